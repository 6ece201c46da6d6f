using System.Net.Http.Json;
using System.Text.Json.Serialization.Metadata;
using XenAoe.Agents;
using XenAoe.Control.Model;
using XenAoe.Os;

namespace XenAoe.Control.Api;

/// <summary>
/// The REST API as typed calls, for the CLI and tests. Several controller URLs may be given (a leader and standbys): a call
/// that cannot connect moves on to the next. Refusals come back as <see cref="ControlException"/> with the controller's reason.
/// </summary>
public sealed class ControllerClient : IDisposable
{
    private static readonly ApiJsonContext Json = ApiJsonContext.Default;
    private readonly JsonApiClient[] _clients;
    private int _current;

    /// <param name="networkNamespace">Connect from inside this network namespace (a lab's controllers live on its management network).</param>
    /// <param name="token">The cluster's API token; null only for the calls that need none (health, join).</param>
    public ControllerClient(IReadOnlyList<string> urls, string? token, TimeSpan? timeout = null, string? networkNamespace = null)
    {
        if (urls.Count == 0)
            throw new ArgumentException("no controller URL");
        _clients = [.. urls.Select(url => new JsonApiClient(url, timeout ?? TimeSpan.FromSeconds(30), token, "the controller",
            r => new ControlException(r.Message, r.Status), networkNamespace is null ? null : NamespaceHttp.CreateHandler(networkNamespace)))];
    }

    public IReadOnlyList<string> Urls => [.. _clients.Select(c => c.Endpoint)];

    public Task<ControllerHealth> HealthAsync(CancellationToken ct = default) => GetAsync("api/v1/health", Json.ControllerHealth, ct);

    public Task<IReadOnlyList<HostRecord>> HostsAsync(CancellationToken ct = default) => GetAsync("api/v1/hosts", Json.IReadOnlyListHostRecord, ct);

    /// <summary>Deletes a host's record; refused while VMs are placed there.</summary>
    public Task RemoveHostAsync(string host, CancellationToken ct = default) => SendAsync(HttpMethod.Delete, $"api/v1/hosts/{Uri.EscapeDataString(host)}", ct);

    public Task<JobRecord> EvacuateAsync(string host, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, $"api/v1/hosts/{Uri.EscapeDataString(host)}/evacuate", null, Json.JobRecord, ct);

    /// <summary>Ends a host's maintenance: it takes new VMs again.</summary>
    public Task<HostRecord> ResumeHostAsync(string host, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, $"api/v1/hosts/{Uri.EscapeDataString(host)}/resume", null, Json.HostRecord, ct);

    public Task<IReadOnlyList<DiskServerRecord>> DiskServersAsync(CancellationToken ct = default) =>
        GetAsync("api/v1/disk-servers", Json.IReadOnlyListDiskServerRecord, ct);

    /// <summary>Deletes a disk server's record; refused while VM disks have legs there.</summary>
    public Task RemoveDiskServerAsync(string name, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Delete, $"api/v1/disk-servers/{Uri.EscapeDataString(name)}", ct);

    /// <summary>Moves every VM disk leg off the disk server (one after the other) and keeps new legs off it.</summary>
    public Task<JobRecord> DrainDiskServerAsync(string name, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, $"api/v1/disk-servers/{Uri.EscapeDataString(name)}/drain", null, Json.JobRecord, ct);

    /// <summary>Creates the cluster's identity (once).</summary>
    public Task<ClusterRecord> InitClusterAsync(CancellationToken ct = default) => SendAsync(HttpMethod.Post, "api/v1/cluster", null, Json.ClusterRecord, ct);

    public Task<ClusterRecord> ClusterAsync(CancellationToken ct = default) => GetAsync("api/v1/cluster", Json.ClusterRecord, ct);

    /// <param name="ttl">How long it joins machines; null: an hour.</param>
    public Task<JoinTokenCreated> CreateJoinTokenAsync(TimeSpan? ttl = null, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, "api/v1/join-tokens", () => JsonContent.Create(new CreateJoinTokenRequest(ttl?.TotalSeconds), Json.CreateJoinTokenRequest),
            Json.JoinTokenCreated, ct);

    public Task<IReadOnlyList<JoinTokenInfo>> JoinTokensAsync(CancellationToken ct = default) => GetAsync("api/v1/join-tokens", Json.IReadOnlyListJoinTokenInfo, ct);

    public Task RevokeJoinTokenAsync(string id, CancellationToken ct = default) => SendAsync(HttpMethod.Delete, $"api/v1/join-tokens/{Uri.EscapeDataString(id)}", ct);

    /// <summary>Trades a join token for the cluster's API token (needs no API token itself); refused (403) with the reason.</summary>
    public Task<JoinResponse> JoinAsync(JoinRequest request, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, "api/v1/join", () => JsonContent.Create(request, Json.JoinRequest), Json.JoinResponse, ct);

    public Task<IReadOnlyList<VmRecord>> VmsAsync(CancellationToken ct = default) => GetAsync("api/v1/vms", Json.IReadOnlyListVmRecord, ct);

    public Task<VmRecord> VmAsync(string name, CancellationToken ct = default) => GetAsync($"api/v1/vms/{Uri.EscapeDataString(name)}", Json.VmRecord, ct);

    public Task<JobRecord> CreateVmAsync(CreateVmRequest request, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, "api/v1/vms", () => JsonContent.Create(request, Json.CreateVmRequest), Json.JobRecord, ct);

    /// <summary>start, stop, reboot, migrate or failover; <paramref name="body"/> makes the body (again for each controller tried).</summary>
    public Task<JobRecord> VmOperationAsync(string name, string operation, Func<HttpContent>? body = null, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, $"api/v1/vms/{Uri.EscapeDataString(name)}/{operation}", body, Json.JobRecord, ct);

    public Task<JobRecord> MigrateAsync(string name, string? to, CancellationToken ct = default) =>
        VmOperationAsync(name, "migrate", () => JsonContent.Create(new MigrateRequest(to), Json.MigrateRequest), ct);

    public Task<JobRecord> ReplaceLegAsync(string name, string disk, ReplaceVmLegRequest request, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, $"api/v1/vms/{Uri.EscapeDataString(name)}/disks/{Uri.EscapeDataString(disk)}/replace-leg",
            () => JsonContent.Create(request, Json.ReplaceVmLegRequest), Json.JobRecord, ct);

    public Task<JobRecord> StopAsync(string name, bool force, CancellationToken ct = default) =>
        VmOperationAsync(name, "stop", () => JsonContent.Create(new StopRequest(force), Json.StopRequest), ct);

    public Task<JobRecord> DeleteVmAsync(string name, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Delete, $"api/v1/vms/{Uri.EscapeDataString(name)}", null, Json.JobRecord, ct);

    public Task<IReadOnlyList<JobRecord>> JobsAsync(CancellationToken ct = default) => GetAsync("api/v1/jobs", Json.IReadOnlyListJobRecord, ct);

    public Task<JobRecord> JobAsync(string id, CancellationToken ct = default) => GetAsync($"api/v1/jobs/{Uri.EscapeDataString(id)}", Json.JobRecord, ct);

    public Task<CapacityResponse> CapacityAsync(int cpus, int memoryMiB, long diskBytes, CancellationToken ct = default) =>
        GetAsync($"api/v1/capacity?cpus={cpus}&memoryMiB={memoryMiB}&diskBytes={diskBytes}", Json.CapacityResponse, ct);

    /// <summary>Polls a job until it finishes, reporting each change (a step starting or ending) to <paramref name="progress"/>.</summary>
    public async Task<JobRecord> WaitAsync(string id, Action<JobRecord>? progress = null, CancellationToken ct = default)
    {
        string? last = null;
        while (true)
        {
            var job = await JobAsync(id, ct).ConfigureAwait(false);
            var now = string.Join(",", job.Steps.Select(s => $"{s.Name}:{s.State}")) + job.State;
            if (now != last)
                progress?.Invoke(job);
            last = now;
            if (job.IsFinished)
                return job;
            await Task.Delay(TimeSpan.FromMilliseconds(200), ct).ConfigureAwait(false);
        }
    }

    public void Dispose()
    {
        foreach (var client in _clients)
            client.Dispose();
    }

    private Task<T> GetAsync<T>(string path, JsonTypeInfo<T> type, CancellationToken ct) =>
        OnAnyAsync(c => c.GetAsync(path, type, ct));

    private Task<T> SendAsync<T>(HttpMethod method, string path, Func<HttpContent>? body, JsonTypeInfo<T> type, CancellationToken ct) =>
        OnAnyAsync(c => c.SendContentAsync(method, path, body, type, idempotent: method == HttpMethod.Get, ct));

    private Task SendAsync(HttpMethod method, string path, CancellationToken ct) =>
        OnAnyAsync(async c =>
        {
            await c.SendAsync(method, path, idempotent: false, ct).ConfigureAwait(false);
            return true;
        });

    /// <summary>Asks the controllers in turn, starting with the last that answered, until one is reachable.</summary>
    private async Task<T> OnAnyAsync<T>(Func<JsonApiClient, Task<T>> call)
    {
        HttpRequestException? unreachable = null;
        for (var i = 0; i < _clients.Length; i++)
        {
            var index = (_current + i) % _clients.Length;
            try
            {
                var result = await call(_clients[index]).ConfigureAwait(false);
                _current = index;
                return result;
            }
            catch (HttpRequestException e) when (e.StatusCode is null)
            {
                // Not reachable (a dead controller): try the next one.
                unreachable = e;
            }
        }
        throw new ControlException($"no controller answers ({string.Join(", ", Urls)}): {unreachable?.Message}", 503, unreachable);
    }
}
