using System.Net.Http.Json;
using System.Text.Json.Serialization.Metadata;
using XenAoe.Agents.Disk;

namespace XenAoe.Agents.Host;

/// <summary>
/// Talks to a host daemon: over its unix socket (a path) or its management address (an <c>http://</c> URL). Refusals come
/// back as <see cref="HostException"/> with the daemon's reason and status.
/// </summary>
public sealed class HostApiClient : IDisposable
{
    private static readonly HostApiJsonContext Json = HostApiJsonContext.Default;
    private readonly HttpClient _http;

    /// <param name="endpoint">A unix socket path, or a URL such as <c>http://10.77.0.21:7300</c>.</param>
    /// <param name="timeout">Per request; a migration's request lasts as long as the migration.</param>
    /// <param name="token">The cluster's API token, needed for a URL (see <see cref="ApiToken"/>).</param>
    public HostApiClient(string endpoint, TimeSpan? timeout = null, string? token = null)
    {
        Endpoint = endpoint;
        _http = AgentHttp.Create(endpoint, timeout ?? TimeSpan.FromMinutes(10), token);
    }

    public string Endpoint { get; }

    public async Task<HostInfo> InfoAsync(CancellationToken ct = default) =>
        await Read(await _http.GetAsync("v1/host", ct).ConfigureAwait(false), Json.HostInfo, ct).ConfigureAwait(false);

    public async Task<IReadOnlyList<VmStatus>> ListAsync(CancellationToken ct = default) =>
        await Read(await _http.GetAsync("v1/vms", ct).ConfigureAwait(false), Json.IReadOnlyListVmStatus, ct).ConfigureAwait(false);

    /// <summary>The VM, or null when this host has none of that name.</summary>
    public async Task<VmStatus?> GetAsync(string name, CancellationToken ct = default)
    {
        using var response = await _http.GetAsync($"v1/vms/{Uri.EscapeDataString(name)}", ct).ConfigureAwait(false);
        if (response.StatusCode == System.Net.HttpStatusCode.NotFound)
            return null;
        return await Read(response, Json.VmStatus, ct).ConfigureAwait(false);
    }

    public async Task<VmStatus> StartAsync(StartVmRequest request, CancellationToken ct = default) =>
        await Read(await _http.PostAsJsonAsync("v1/vms", request, Json.StartVmRequest, ct).ConfigureAwait(false), Json.VmStatus, ct).ConfigureAwait(false);

    public async Task StopAsync(string name, TimeSpan? graceful = null, CancellationToken ct = default) =>
        await EnsureOk(await _http.PostAsJsonAsync($"v1/vms/{Uri.EscapeDataString(name)}/stop", new StopVmRequest(graceful?.TotalSeconds),
            Json.StopVmRequest, ct).ConfigureAwait(false), ct).ConfigureAwait(false);

    public Task KillAsync(string name, CancellationToken ct = default) => PostAsync($"v1/vms/{Uri.EscapeDataString(name)}/kill", ct);

    public Task RebootAsync(string name, CancellationToken ct = default) => PostAsync($"v1/vms/{Uri.EscapeDataString(name)}/reboot", ct);

    /// <summary>Puts a new volume in place of leg <see cref="ReplaceLegRequest.Index"/>; returns at once, the copy runs on (see <see cref="GetAsync"/>).</summary>
    public async Task<VmStatus> ReplaceLegAsync(string name, string diskId, ReplaceLegRequest request, CancellationToken ct = default) =>
        await Read(await _http.PostAsJsonAsync($"v1/vms/{Uri.EscapeDataString(name)}/disks/{Uri.EscapeDataString(diskId)}/replace-leg", request,
            Json.ReplaceLegRequest, ct).ConfigureAwait(false), Json.VmStatus, ct).ConfigureAwait(false);

    /// <summary>Runs the whole migration (returns when it has finished or failed).</summary>
    public async Task<MigrationReport> MigrateAsync(string name, MigrateVmRequest request, CancellationToken ct = default) =>
        await Read(await _http.PostAsJsonAsync($"v1/vms/{Uri.EscapeDataString(name)}/migrate", request, Json.MigrateVmRequest, ct).ConfigureAwait(false),
            Json.MigrationReport, ct).ConfigureAwait(false);

    /// <summary>The migration in progress or last finished for <paramref name="name"/> on this (source) host; null if none.</summary>
    public async Task<MigrationReport?> MigrationAsync(string name, CancellationToken ct = default)
    {
        using var response = await _http.GetAsync($"v1/vms/{Uri.EscapeDataString(name)}/migration", ct).ConfigureAwait(false);
        if (response.StatusCode is System.Net.HttpStatusCode.NotFound or System.Net.HttpStatusCode.NoContent)
            return null;
        return await Read(response, Json.MigrationReport, ct).ConfigureAwait(false);
    }

    public async Task<FormatDiskResponse> FormatDiskAsync(FormatDiskRequest request, CancellationToken ct = default) =>
        await Read(await _http.PostAsJsonAsync("v1/disks/format", request, Json.FormatDiskRequest, ct).ConfigureAwait(false), Json.FormatDiskResponse, ct)
            .ConfigureAwait(false);

    public async Task<IncomingVmResponse> PrepareIncomingAsync(IncomingVmRequest request, CancellationToken ct = default) =>
        await Read(await _http.PostAsJsonAsync("v1/incoming", request, Json.IncomingVmRequest, ct).ConfigureAwait(false), Json.IncomingVmResponse, ct)
            .ConfigureAwait(false);

    public Task ActivateIncomingAsync(string name, CancellationToken ct = default) => PostAsync($"v1/incoming/{Uri.EscapeDataString(name)}/activate", ct);

    public Task AbortIncomingAsync(string name, CancellationToken ct = default) => PostAsync($"v1/incoming/{Uri.EscapeDataString(name)}/abort", ct);

    public void Dispose() => _http.Dispose();

    private async Task PostAsync(string path, CancellationToken ct) =>
        await EnsureOk(await _http.PostAsync(path, content: null, ct).ConfigureAwait(false), ct).ConfigureAwait(false);

    private static async Task<T> Read<T>(HttpResponseMessage response, JsonTypeInfo<T> type, CancellationToken ct)
    {
        using (response)
        {
            await EnsureOk(response, ct).ConfigureAwait(false);
            return await response.Content.ReadFromJsonAsync(type, ct).ConfigureAwait(false)
                ?? throw new InvalidDataException("the host daemon sent an empty answer");
        }
    }

    private static async Task EnsureOk(HttpResponseMessage response, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode)
            return;
        ErrorResponse? error = null;
        try
        {
            error = await response.Content.ReadFromJsonAsync(Json.ErrorResponse, ct).ConfigureAwait(false);
        }
        catch (System.Text.Json.JsonException)
        {
            // Not our error body: the status code below still says what happened.
        }
        throw new HostException(error?.Error ?? $"the host daemon answered {(int)response.StatusCode} {response.ReasonPhrase}", (int)response.StatusCode);
    }
}
