using XenAoe.Agents.Host;

namespace XenAoe.Cli;

/// <summary>
/// The host daemons a command talks to until the controller exists: <c>--host</c> (socket paths or URLs), else
/// <c>$XENAOE_HOSTS</c> (comma-separated), else every host daemon socket of the lab (<c>LAB_STATE/hosts/NAME/host.sock</c>,
/// LAB_STATE being <c>$XENAOE_LAB</c> or <c>/var/lib/xenaoe/lab</c>).
/// </summary>
internal sealed class HostDirectory : IDisposable
{
    /// <summary>Where <c>xenaoe lab</c> keeps its state, and its host daemons theirs (under <c>hosts/</c>): <c>$XENAOE_LAB</c> or the default.</summary>
    public static string DefaultLabState =>
        Environment.GetEnvironmentVariable("XENAOE_LAB") is { Length: > 0 } lab ? lab : XenAoe.Lab.Cluster.LabPlan.DefaultStateDirectory;

    private readonly List<HostApiClient> _clients;

    private HostDirectory(List<HostApiClient> clients) => _clients = clients;

    public IReadOnlyList<HostApiClient> Clients => _clients;

    public static HostDirectory Open(IReadOnlyList<string>? hosts)
    {
        IEnumerable<string> endpoints = hosts is { Count: > 0 } ? hosts
            : Environment.GetEnvironmentVariable("XENAOE_HOSTS") is { Length: > 0 } env ? env.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            : LabHostSockets(DefaultLabState);
        var clients = endpoints.Select(e => new HostApiClient(e)).ToList();
        if (clients.Count == 0)
            throw new ArgumentException($"no host daemon to talk to: give --host SOCKET|URL, set XENAOE_HOSTS, or start the lab (`xenaoe lab up`)");
        return new HostDirectory(clients);
    }

    public static IEnumerable<string> LabHostSockets(string labState)
    {
        var hosts = Path.Combine(labState, "hosts");
        return Directory.Exists(hosts)
            ? Directory.EnumerateDirectories(hosts).Order(StringComparer.Ordinal).Select(d => Path.Combine(d, "host.sock")).Where(File.Exists)
            : [];
    }

    /// <summary>Every host's identity; a host that does not answer is reported, not fatal.</summary>
    public async Task<IReadOnlyList<(HostApiClient Client, HostInfo? Info, string? Error)>> InfosAsync(CancellationToken ct)
    {
        return await Task.WhenAll(_clients.Select(async c =>
        {
            try
            {
                return (c, (HostInfo?)await c.InfoAsync(ct), (string?)null);
            }
            catch (Exception e) when (e is HttpRequestException or HostException or TimeoutException)
            {
                return (c, null, e.Message);
            }
        }));
    }

    /// <summary>The host named <paramref name="name"/> (its daemon's --name), or the one at that endpoint.</summary>
    public async Task<(HostApiClient Client, HostInfo Info)> FindHostAsync(string name, CancellationToken ct)
    {
        foreach (var (client, info, _) in await InfosAsync(ct))
        {
            if (info is not null && (info.Name == name || client.Endpoint == name || info.ApiUrl == name))
                return (client, info);
        }
        throw new ArgumentException($"no host daemon named '{name}' answers (known: {string.Join(", ", _clients.Select(c => c.Endpoint))})");
    }

    /// <summary>The host running <paramref name="vm"/>, with its status there.</summary>
    public async Task<(HostApiClient Client, VmStatus Vm)> FindVmAsync(string vm, CancellationToken ct)
    {
        foreach (var client in _clients)
        {
            try
            {
                if (await client.GetAsync(vm, ct) is { } status && status.Role != VmRole.Incoming)
                    return (client, status);
            }
            catch (HttpRequestException)
            {
                // A host that does not answer cannot be running it as far as we can tell: look at the others.
            }
        }
        throw new ArgumentException($"no host runs a VM named '{vm}'");
    }

    public void Dispose()
    {
        foreach (var client in _clients)
            client.Dispose();
    }
}
