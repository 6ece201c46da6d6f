namespace XenAoe.Control.Scheduling;

/// <summary>Whether a server takes part in placement.</summary>
public enum ServerState
{
    /// <summary>Runs VMs (or serves volumes) and accepts new ones.</summary>
    Up,

    /// <summary>Gone: holds nothing the scheduler can use; its VMs need a failover.</summary>
    Down,

    /// <summary>Still runs what it has (its failure must still be covered) but accepts nothing new.</summary>
    Draining,
}

/// <summary>A CPU server as the scheduler sees it.</summary>
/// <param name="Cpus">Physical cores; VMs may use up to <see cref="SchedulerOptions.CpuOvercommit"/> vCPUs per core.</param>
/// <param name="RamMiB">Installed RAM in MiB.</param>
/// <param name="ReservedRamMiB">RAM kept for the host itself (dom0, data path, page cache), never given to VMs.</param>
/// <param name="Labels">Failure-domain labels such as <c>switch</c> and <c>power</c>; may be null.</param>
public sealed record HostCapacity(
    string Name,
    int Cpus,
    long RamMiB,
    long ReservedRamMiB = 0,
    IReadOnlyDictionary<string, string>? Labels = null,
    ServerState State = ServerState.Up);

/// <summary>A disk server as the scheduler sees it.</summary>
/// <param name="FreeBytes">Space its pool can still give to new volumes.</param>
/// <param name="Labels">Failure-domain labels such as <c>switch</c> and <c>power</c>; may be null.</param>
public sealed record DiskServerCapacity(
    string Name,
    long FreeBytes,
    IReadOnlyDictionary<string, string>? Labels = null,
    ServerState State = ServerState.Up);

/// <summary>One mirrored VM disk: its size and the disk servers of its two legs.</summary>
public sealed record VmDisk(long SizeBytes, string FirstLegServer, string SecondLegServer);

/// <summary>A VM that exists (placed on <paramref name="Host"/>) or is to be placed.</summary>
/// <param name="Host">The CPU server it runs on; null while it is not placed.</param>
/// <param name="Disks">Its mirrored disks; may be null. Disk space is not taken from the disk servers' free bytes again.</param>
public sealed record VmDemand(
    string Name,
    int Vcpus,
    long RamMiB,
    string? Host,
    IReadOnlyList<VmDisk>? Disks = null);

/// <summary>Cluster-wide placement policy.</summary>
/// <param name="CpuOvercommit">vCPUs allowed per physical core (default 4).</param>
/// <param name="FailureDomainLabels">
/// Label keys that name failure domains (default <c>switch</c>, <c>power</c>). Two servers are in different failure domains
/// when, for every such key that either of them carries, both carry it with different values.
/// </param>
/// <param name="NPlusOneCheckBudget">
/// Host visits the exact N+1 check may spend per placement when the fast test is inconclusive (see <see cref="Scheduler"/>);
/// past it the placement counts as breaking N+1, which errs on the safe side.
/// </param>
public sealed record SchedulerOptions(
    double CpuOvercommit = 4.0,
    IReadOnlyList<string>? FailureDomainLabels = null,
    int NPlusOneCheckBudget = 1_000_000)
{
    /// <summary>The labels in effect: <see cref="FailureDomainLabels"/> or <c>switch</c>, <c>power</c>.</summary>
    public IReadOnlyList<string> DomainLabels => FailureDomainLabels ?? DefaultDomainLabels;

    private static readonly string[] DefaultDomainLabels = ["switch", "power"];
}

/// <summary>A VM to place: a new one, or one restarted or moved from <see cref="ExcludedHosts"/>.</summary>
/// <param name="ExcludedHosts">Hosts never chosen (the dead one, the one being evacuated); may be null.</param>
/// <param name="AllowBreakingNPlusOne">Place even when no host keeps N+1 (the result says so); otherwise refuse.</param>
public sealed record PlacementRequest(
    string VmName,
    int Vcpus,
    long RamMiB,
    IReadOnlyCollection<string>? ExcludedHosts = null,
    bool AllowBreakingNPlusOne = false);

/// <summary>The shape of a VM for <see cref="Scheduler.Capacity"/>.</summary>
/// <param name="DiskBytes">Size of its one mirrored disk (two legs of this size); 0 leaves disks out of the count.</param>
public sealed record VmSize(int Vcpus, long RamMiB, long DiskBytes = 0);
