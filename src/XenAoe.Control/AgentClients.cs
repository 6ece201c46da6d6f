using XenAoe.Agents.Disk;
using XenAoe.Agents.Host;

namespace XenAoe.Control;

/// <summary>Clients of the host and disk daemons, carrying the cluster's API token (their management-network APIs require it).</summary>
public sealed class AgentClients(string token)
{
    public HostApiClient Host(string apiUrl, TimeSpan timeout) => new(apiUrl, timeout, token);

    public DiskApiClient Disk(string apiUrl) => new(apiUrl, token);
}
