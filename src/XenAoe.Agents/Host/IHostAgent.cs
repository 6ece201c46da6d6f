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

    /// <summary>Source: starts sending the VM to a destination's incoming copy; returns at once (see <see cref="MigrationAsync"/>). Safe to repeat.</summary>
    Task<MigrationReport> StartMigrationAsync(string name, StartMigrationRequest request, CancellationToken ct = default);

    /// <summary>Source: the migration under way (as the hypervisor reports it now) or the last one given up; null if none.</summary>
    Task<MigrationReport?> MigrationAsync(string name, CancellationToken ct = default);

    /// <summary>Source, once <see cref="MigrationPhase.Transferred"/>: ends the paused copy, closes the disks and forgets the VM.</summary>
    Task<HandoverResponse> HandOverAsync(string name, CancellationToken ct = default);

    /// <summary>Source: gives the migration up, the VM running here again; only once the destination's copy is aborted. Safe to repeat.</summary>
    Task CancelMigrationAsync(string name, CancellationToken ct = default);

    /// <summary>Formats two fresh volumes as a new mirror and writes an image onto it.</summary>
    Task<FormatDiskResponse> FormatDiskAsync(FormatDiskRequest request, CancellationToken ct = default);

    /// <summary>Destination: the VM's disks joined and the hypervisor waiting for its memory; repeated, answers the same address.</summary>
    Task<IncomingVmResponse> PrepareIncomingAsync(IncomingVmRequest request, CancellationToken ct = default);

    /// <summary>Destination, after the hand-over: fences the source and lets the VM's I/O through. Nothing to do when it runs here.</summary>
    Task ActivateIncomingAsync(string name, CancellationToken ct = default);

    /// <summary>Destination: removes an incoming copy; nothing to do when there is none. A VM running here is refused.</summary>
    Task AbortIncomingAsync(string name, CancellationToken ct = default);
}
