namespace XenAoe.Agents.Host;

/// <summary>
/// What the controller asks of a CPU server's host daemon. <see cref="HostApiClient"/> asks a real daemon over HTTP; tests use
/// an in-memory fake that fails on cue. Refusals are <see cref="HostException"/>s with the daemon's reason and status; a host
/// that does not answer is an <see cref="HttpRequestException"/> or a <see cref="TimeoutException"/>.
/// </summary>
public interface IHostAgent
{
    /// <summary>Where the daemon is reached: a URL or a unix socket path.</summary>
    string Endpoint { get; }

    Task<HostInfo> InfoAsync(CancellationToken ct = default);

    Task<IReadOnlyList<VmStatus>> ListAsync(CancellationToken ct = default);

    /// <summary>The VM, or null when this host has none of that name.</summary>
    Task<VmStatus?> GetAsync(string name, CancellationToken ct = default);

    Task<VmStatus> StartAsync(StartVmRequest request, CancellationToken ct = default);

    Task StopAsync(string name, TimeSpan? graceful = null, CancellationToken ct = default);

    Task KillAsync(string name, CancellationToken ct = default);

    Task RebootAsync(string name, CancellationToken ct = default);

    /// <summary>Puts a new volume in place of leg <see cref="ReplaceLegRequest.Index"/>; returns at once, the copy runs on (see <see cref="GetAsync"/>).</summary>
    Task<VmStatus> ReplaceLegAsync(string name, string diskId, ReplaceLegRequest request, CancellationToken ct = default);

    /// <summary>Runs the whole migration (returns when it has finished or failed).</summary>
    Task<MigrationReport> MigrateAsync(string name, MigrateVmRequest request, CancellationToken ct = default);

    /// <summary>The migration in progress or last finished for <paramref name="name"/> on this (source) host; null if none.</summary>
    Task<MigrationReport?> MigrationAsync(string name, CancellationToken ct = default);

    /// <summary>Formats two fresh volumes as a new mirror and writes an image onto it.</summary>
    Task<FormatDiskResponse> FormatDiskAsync(FormatDiskRequest request, CancellationToken ct = default);

    Task<IncomingVmResponse> PrepareIncomingAsync(IncomingVmRequest request, CancellationToken ct = default);

    Task ActivateIncomingAsync(string name, CancellationToken ct = default);

    Task AbortIncomingAsync(string name, CancellationToken ct = default);
}
