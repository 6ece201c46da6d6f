using System.Net.Http.Json;
using XenAoe.Aoe;
using XenAoe.Storage;

namespace XenAoe.Agents.Disk;

/// <summary>Talks to a running disk daemon over its unix socket or management address. Errors the daemon refuses come back as <see cref="StorageException"/>.</summary>
public sealed class DiskApiClient : IDiskVolumes, IDisposable
{
    private readonly HttpClient _http;

    /// <param name="endpoint">The daemon's unix socket (<see cref="SocketPath"/>), or its management URL (<c>--listen</c>).</param>
    /// <param name="token">The cluster's API token, needed for a URL (see <see cref="ApiToken"/>).</param>
    public DiskApiClient(string endpoint, string? token = null) => _http = AgentHttp.Create(endpoint, TimeSpan.FromSeconds(30), token);

    /// <summary>The daemon's socket for a pool directory.</summary>
    public static string SocketPath(string poolDirectory) => Path.Combine(Path.GetFullPath(poolDirectory), "disk.sock");

    public async Task<IReadOnlyList<VolumeSpec>> ListAsync(CancellationToken ct = default) =>
        await Read(await _http.GetAsync("v1/volumes", ct).ConfigureAwait(false), StorageJsonContext.Default.ListVolumeSpec, ct).ConfigureAwait(false);

    public async Task<VolumeSpec> CreateAsync(VolumeSpec spec, CancellationToken ct = default) =>
        await Read(await _http.PostAsJsonAsync("v1/volumes", spec, StorageJsonContext.Default.VolumeSpec, ct).ConfigureAwait(false),
            StorageJsonContext.Default.VolumeSpec, ct).ConfigureAwait(false);

    public async Task<VolumeSpec> ResizeAsync(string name, long sizeBytes, bool allowShrink, CancellationToken ct = default) =>
        await Read(await _http.PatchAsJsonAsync($"v1/volumes/{Uri.EscapeDataString(name)}", new ResizeRequest(sizeBytes, allowShrink),
            DiskApiJsonContext.Default.ResizeRequest, ct).ConfigureAwait(false), StorageJsonContext.Default.VolumeSpec, ct).ConfigureAwait(false);

    public async Task DeleteAsync(string name, bool force, CancellationToken ct = default) =>
        await EnsureOk(await _http.DeleteAsync($"v1/volumes/{Uri.EscapeDataString(name)}?force={(force ? "true" : "false")}", ct).ConfigureAwait(false), ct)
            .ConfigureAwait(false);

    public Task<VolumeSpec> SetReservationAsync(string name, IReadOnlyList<MacAddress> holders, CancellationToken ct = default) =>
        PutMacs(name, "reservation", holders, ct);

    public Task<VolumeSpec> SetMacMaskAsync(string name, IReadOnlyList<MacAddress> macs, CancellationToken ct = default) =>
        PutMacs(name, "mask", macs, ct);

    public async Task<VolumeSpec> SetConfigStringAsync(string name, string value, CancellationToken ct = default) =>
        await Read(await _http.PutAsJsonAsync($"v1/volumes/{Uri.EscapeDataString(name)}/config", new ConfigStringRequest(value),
            DiskApiJsonContext.Default.ConfigStringRequest, ct).ConfigureAwait(false), StorageJsonContext.Default.VolumeSpec, ct).ConfigureAwait(false);

    public async Task<PoolSpace> SpaceAsync(CancellationToken ct = default) =>
        await Read(await _http.GetAsync("v1/pool", ct).ConfigureAwait(false), DiskApiJsonContext.Default.PoolSpace, ct).ConfigureAwait(false);

    public async Task<IReadOnlyDictionary<string, long>> CountersAsync(CancellationToken ct = default) =>
        await Read(await _http.GetAsync("v1/counters", ct).ConfigureAwait(false), DiskApiJsonContext.Default.DictionaryStringInt64, ct).ConfigureAwait(false);

    public void Dispose() => _http.Dispose();

    private async Task<VolumeSpec> PutMacs(string name, string what, IReadOnlyList<MacAddress> macs, CancellationToken ct) =>
        await Read(await _http.PutAsJsonAsync($"v1/volumes/{Uri.EscapeDataString(name)}/{what}", new MacListRequest([.. macs.Select(m => m.ToString())]),
            DiskApiJsonContext.Default.MacListRequest, ct).ConfigureAwait(false), StorageJsonContext.Default.VolumeSpec, ct).ConfigureAwait(false);

    private static async Task<T> Read<T>(HttpResponseMessage response, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, CancellationToken ct)
    {
        await EnsureOk(response, ct).ConfigureAwait(false);
        return await response.Content.ReadFromJsonAsync(type, ct).ConfigureAwait(false)
            ?? throw new InvalidDataException("the disk daemon sent an empty answer");
    }

    private static async Task EnsureOk(HttpResponseMessage response, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode)
            return;
        ErrorResponse? error = null;
        try
        {
            error = await response.Content.ReadFromJsonAsync(DiskApiJsonContext.Default.ErrorResponse, ct).ConfigureAwait(false);
        }
        catch (System.Text.Json.JsonException)
        {
            // Not our error body (a proxy or a crash page): the status code below still says what happened.
        }
        var kind = response.StatusCode switch
        {
            System.Net.HttpStatusCode.NotFound => StorageError.NotFound,
            System.Net.HttpStatusCode.Conflict => StorageError.Conflict,
            _ => StorageError.Invalid,
        };
        throw new StorageException(error?.Error ?? $"the disk daemon answered {(int)response.StatusCode} {response.ReasonPhrase}", kind);
    }
}
