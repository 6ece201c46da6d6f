namespace XenAoe.Agents.Host;

/// <summary>
/// Talks to a host daemon: over its unix socket (a path) or its management address (an <c>http://</c> URL). Refusals come
/// back as <see cref="HostException"/> with the daemon's reason and status; the error model is <see cref="JsonApiClient"/>'s.
/// </summary>
public sealed class HostApiClient : IHostAgent, IDisposable
{
    private static readonly HostApiJsonContext Json = HostApiJsonContext.Default;
    private readonly JsonApiClient _api;

    /// <param name="endpoint">A unix socket path, or a URL such as <c>http://10.77.0.21:7300</c>.</param>
    /// <param name="timeout">Per request.</param>
    /// <param name="token">The cluster's API token, needed for a URL (see <see cref="ApiToken"/>).</param>
    public HostApiClient(string endpoint, TimeSpan? timeout = null, string? token = null) =>
        _api = new JsonApiClient(endpoint, timeout ?? TimeSpan.FromMinutes(10), token, "the host daemon", r => new HostException(r.Message, r.Status));

    public string Endpoint => _api.Endpoint;

    public Task<HostInfo> InfoAsync(CancellationToken ct = default) => _api.GetAsync("v1/host", Json.HostInfo, ct);

    public Task<IReadOnlyList<VmStatus>> ListAsync(CancellationToken ct = default) => _api.GetAsync("v1/vms", Json.IReadOnlyListVmStatus, ct);

    public Task<VmStatus?> GetAsync(string name, CancellationToken ct = default) => _api.GetOrNullAsync(VmPath(name), Json.VmStatus, ct);

    public Task<VmStatus> StartAsync(StartVmRequest request, CancellationToken ct = default) =>
        _api.SendAsync(HttpMethod.Post, "v1/vms", request, Json.StartVmRequest, Json.VmStatus, idempotent: false, ct);

    public Task StopAsync(string name, TimeSpan? graceful = null, CancellationToken ct = default) =>
        _api.SendAsync(HttpMethod.Post, VmPath(name, "stop"), new StopVmRequest(graceful?.TotalSeconds), Json.StopVmRequest, idempotent: false, ct);

    public Task KillAsync(string name, CancellationToken ct = default) => _api.SendAsync(HttpMethod.Post, VmPath(name, "kill"), idempotent: true, ct);

    public Task RebootAsync(string name, CancellationToken ct = default) => _api.SendAsync(HttpMethod.Post, VmPath(name, "reboot"), idempotent: false, ct);

    public Task<VmStatus> ReplaceLegAsync(string name, string diskId, ReplaceLegRequest request, CancellationToken ct = default) =>
        _api.SendAsync(HttpMethod.Post, VmPath(name, $"disks/{Uri.EscapeDataString(diskId)}/replace-leg"), request, Json.ReplaceLegRequest, Json.VmStatus,
            idempotent: false, ct);

    public Task<MigrationReport> StartMigrationAsync(string name, StartMigrationRequest request, CancellationToken ct = default) =>
        _api.SendAsync(HttpMethod.Post, VmPath(name, "migration"), request, Json.StartMigrationRequest, Json.MigrationReport, idempotent: true, ct);

    public Task<MigrationReport?> MigrationAsync(string name, CancellationToken ct = default) =>
        _api.GetOrNullAsync(VmPath(name, "migration"), Json.MigrationReport, ct);

    public Task<HandoverResponse> HandOverAsync(string name, CancellationToken ct = default) =>
        _api.SendAsync(HttpMethod.Post, VmPath(name, "migration/handover"), Json.HandoverResponse, idempotent: false, ct);

    public Task CancelMigrationAsync(string name, CancellationToken ct = default) =>
        _api.SendAsync(HttpMethod.Post, VmPath(name, "migration/cancel"), idempotent: true, ct);

    public Task<FormatDiskResponse> FormatDiskAsync(FormatDiskRequest request, CancellationToken ct = default) =>
        _api.SendAsync(HttpMethod.Post, "v1/disks/format", request, Json.FormatDiskRequest, Json.FormatDiskResponse, idempotent: false, ct);

    public Task<IncomingVmResponse> PrepareIncomingAsync(IncomingVmRequest request, CancellationToken ct = default) =>
        _api.SendAsync(HttpMethod.Post, "v1/incoming", request, Json.IncomingVmRequest, Json.IncomingVmResponse, idempotent: true, ct);

    public Task ActivateIncomingAsync(string name, CancellationToken ct = default) =>
        _api.SendAsync(HttpMethod.Post, $"v1/incoming/{Uri.EscapeDataString(name)}/activate", idempotent: true, ct);

    public Task AbortIncomingAsync(string name, CancellationToken ct = default) =>
        _api.SendAsync(HttpMethod.Post, $"v1/incoming/{Uri.EscapeDataString(name)}/abort", idempotent: true, ct);

    public void Dispose() => _api.Dispose();

    private static string VmPath(string name, string? action = null) =>
        action is null ? $"v1/vms/{Uri.EscapeDataString(name)}" : $"v1/vms/{Uri.EscapeDataString(name)}/{action}";
}
