namespace XenAoe.Hypervisors;

/// <summary>
/// One host's hypervisor, in the spirit of Ganeti's hypervisor drivers: lifecycle, inspection, consoles, and live
/// migration split into the steps each side runs (prepare on the destination, migrate and poll on the source, then
/// finalize both sides with the outcome).
/// </summary>
/// <remarks>
/// Migration sequence: destination <see cref="PrepareIncomingAsync"/>; source <see cref="MigrateAsync"/>; source
/// <see cref="MigrationStatusAsync"/> until <see cref="MigrationStatus.IsFinished"/>; then
/// <see cref="FinalizeDestinationAsync"/> first and <see cref="FinalizeSourceAsync"/> second, with the same outcome. That
/// order keeps the VM on exactly one host: on success the destination is confirmed running before the source quits; on
/// failure the destination copy is killed before the source resumes. The source refuses to quit unless its hypervisor
/// reports the migration completed. Implementations are safe for concurrent calls on different VMs.
/// </remarks>
public interface IHypervisorDriver
{
    /// <summary>Starts a VM; returns once its process runs and its control channel answers.</summary>
    /// <exception cref="HypervisorException">Already running, or the hypervisor refused the configuration.</exception>
    Task<VmInfo> StartAsync(VmSpec spec, CancellationToken ct = default);

    /// <summary>Asks the guest to power down (ACPI), and forces the VM off when it is still running after <paramref name="graceful"/>.</summary>
    Task<StopOutcome> StopAsync(string name, TimeSpan graceful, CancellationToken ct = default);

    /// <summary>Forces the VM off at once. No-op when it is not running.</summary>
    Task KillAsync(string name, CancellationToken ct = default);

    /// <summary>Hard reset of the virtual machine (the guest does not shut down first).</summary>
    Task RebootAsync(string name, CancellationToken ct = default);

    /// <summary>Every VM this host knows, running or not, including those started by an earlier instance of the driver.</summary>
    Task<IReadOnlyList<VmInfo>> ListAsync(CancellationToken ct = default);

    /// <summary>The VM's state, consoles and accelerator; null when this host has no VM of that name.</summary>
    Task<VmInfo?> InfoAsync(string name, CancellationToken ct = default);

    /// <summary>Destination: starts the VM paused, waiting for an incoming migration on <paramref name="listenUri"/> (e.g. <c>tcp:10.77.0.12:49152</c>).</summary>
    Task<VmInfo> PrepareIncomingAsync(VmSpec spec, string listenUri, CancellationToken ct = default);

    /// <summary>Source: starts sending the VM to <paramref name="destinationUri"/>; returns once the migration has begun.</summary>
    Task MigrateAsync(string name, string destinationUri, MigrationOptions? options = null, CancellationToken ct = default);

    /// <summary>Source: the migration's progress as the hypervisor reports it.</summary>
    Task<MigrationStatus> MigrationStatusAsync(string name, CancellationToken ct = default);

    /// <summary>Source: aborts a migration in progress; the VM carries on running on the source.</summary>
    Task CancelMigrationAsync(string name, CancellationToken ct = default);

    /// <summary>Source: on success ends the (paused) source copy; on failure makes sure the VM runs on the source again.</summary>
    Task FinalizeSourceAsync(string name, bool succeeded, CancellationToken ct = default);

    /// <summary>Destination: on success waits until the VM runs; on failure kills the incoming copy and removes its files.</summary>
    Task FinalizeDestinationAsync(string name, bool succeeded, CancellationToken ct = default);
}
