using XenAoe.Aoe;
using XenAoe.Storage;

namespace XenAoe.Agents.Disk;

/// <summary>
/// Talks to a running disk daemon over its unix socket or management address. Errors the daemon refuses come back as
/// <see cref="StorageException"/>; the error model is <see cref="JsonApiClient"/>'s.
/// </summary>
public sealed class DiskApiClient : IDiskAgent, IDisposable
{
    private static readonly StorageJsonContext Storage = StorageJsonContext.Default;
    private static readonly DiskApiJsonContext Json = DiskApiJsonContext.Default;
    private readonly JsonApiClient _api;

    /// <param name="endpoint">The daemon's unix socket (<see cref="SocketPath"/>), or its management URL (<c>--listen</c>).</param>
    /// <param name="token">The cluster's API token, needed for a URL (see <see cref="ApiToken"/>).</param>
    public DiskApiClient(string endpoint, string? token = null, TimeSpan? timeout = null) =>
        _api = new JsonApiClient(endpoint, timeout ?? TimeSpan.FromSeconds(30), token, "the disk daemon", Refusal);

    public string Endpoint => _api.Endpoint;

    /// <summary>The daemon's socket for a pool directory.</summary>
    public static string SocketPath(string poolDirectory) => Path.Combine(Path.GetFullPath(poolDirectory), "disk.sock");

    public async Task<IReadOnlyList<VolumeSpec>> ListAsync(CancellationToken ct = default) =>
        await _api.GetAsync("v1/volumes", Storage.ListVolumeSpec, ct).ConfigureAwait(false);

    public Task<VolumeSpec> CreateAsync(VolumeSpec spec, CancellationToken ct = default) =>
        _api.SendAsync(HttpMethod.Post, "v1/volumes", spec, Storage.VolumeSpec, Storage.VolumeSpec, idempotent: false, ct);

    public Task<VolumeSpec> ResizeAsync(string name, long sizeBytes, bool allowShrink, CancellationToken ct = default) =>
        _api.SendAsync(HttpMethod.Patch, VolumePath(name), new ResizeRequest(sizeBytes, allowShrink), Json.ResizeRequest, Storage.VolumeSpec, idempotent: true, ct);

    public Task DeleteAsync(string name, bool force, CancellationToken ct = default) =>
        _api.SendAsync(HttpMethod.Delete, $"{VolumePath(name)}?force={(force ? "true" : "false")}", idempotent: false, ct);

    public Task<VolumeSpec> SetReservationAsync(string name, IReadOnlyList<MacAddress> holders, CancellationToken ct = default) =>
        PutMacs(name, "reservation", holders, ct);

    public Task<VolumeSpec> SetMacMaskAsync(string name, IReadOnlyList<MacAddress> macs, CancellationToken ct = default) =>
        PutMacs(name, "mask", macs, ct);

    public Task<VolumeSpec> SetConfigStringAsync(string name, string value, CancellationToken ct = default) =>
        _api.SendAsync(HttpMethod.Put, $"{VolumePath(name)}/config", new ConfigStringRequest(value), Json.ConfigStringRequest, Storage.VolumeSpec, idempotent: true, ct);

    public Task<DiskInfo> InfoAsync(CancellationToken ct = default) => _api.GetAsync("v1/info", Json.DiskInfo, ct);

    public Task<PoolSpace> SpaceAsync(CancellationToken ct = default) => _api.GetAsync("v1/pool", Json.PoolSpace, ct);

    public async Task<IReadOnlyDictionary<string, long>> CountersAsync(CancellationToken ct = default) =>
        await _api.GetAsync("v1/counters", Json.DictionaryStringInt64, ct).ConfigureAwait(false);

    public void Dispose() => _api.Dispose();

    private static string VolumePath(string name) => $"v1/volumes/{Uri.EscapeDataString(name)}";

    /// <summary>Setting a reservation or a mask is idempotent: the same list twice is the same state.</summary>
    private Task<VolumeSpec> PutMacs(string name, string what, IReadOnlyList<MacAddress> macs, CancellationToken ct) =>
        _api.SendAsync(HttpMethod.Put, $"{VolumePath(name)}/{what}", new MacListRequest([.. macs.Select(m => m.ToString())]), Json.MacListRequest,
            Storage.VolumeSpec, idempotent: true, ct);

    private static StorageException Refusal(ApiRefusal refusal) => new(refusal.Message, refusal.Status switch
    {
        404 => StorageError.NotFound,
        409 => StorageError.Conflict,
        _ => StorageError.Invalid,
    });
}
