using System.Collections.Concurrent;
using XenAoe.Agents.Disk;
using XenAoe.Agents.Host;

namespace XenAoe.Control;

/// <summary>
/// The host and disk daemons as the controller reaches them, by their API URL. Jobs, the heartbeat monitor and registration use
/// only this: <see cref="HttpAgents"/> in the daemon, in-memory fakes in tests.
/// </summary>
public interface IAgents
{
    IHostAgent Host(string apiUrl);

    IDiskAgent Disk(string apiUrl);
}

/// <summary>
/// Clients of the real daemons, one per URL and kept (connections are pooled), carrying the cluster's API token (their
/// management-network APIs require it). A call's own token bounds it further: heartbeats pass one of a second.
/// </summary>
public sealed class HttpAgents(string token) : IAgents, IDisposable
{
    /// <summary>Longest one host request may take: formatting a disk with its image, or starting a VM whose legs answer slowly.</summary>
    public static readonly TimeSpan HostTimeout = TimeSpan.FromMinutes(10);

    private readonly ConcurrentDictionary<string, HostApiClient> _hosts = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DiskApiClient> _disks = new(StringComparer.Ordinal);

    public IHostAgent Host(string apiUrl) => _hosts.GetOrAdd(apiUrl, url => new HostApiClient(url, HostTimeout, token));

    public IDiskAgent Disk(string apiUrl) => _disks.GetOrAdd(apiUrl, url => new DiskApiClient(url, token));

    public void Dispose()
    {
        foreach (var client in _hosts.Values)
            client.Dispose();
        foreach (var client in _disks.Values)
            client.Dispose();
    }
}
