namespace XenAoe.Control.Scheduling;

/// <summary>Why one server was not chosen, in words (e.g. "cpu2: 512 MiB free, 1024 needed").</summary>
public sealed record ServerRejection(string Server, string Reason)
{
    public override string ToString() => $"{Server}: {Reason}";
}

/// <summary>The outcome of <see cref="Scheduler.PlaceVm"/>.</summary>
/// <param name="Host">The chosen CPU server; null when refused.</param>
/// <param name="Reason">Why this host, or why none.</param>
/// <param name="BreaksNPlusOne">
/// True when no host keeps N+1: set on a placement made because the request allowed it, and on the refusal otherwise.
/// </param>
/// <param name="Rejections">Per host that was not chosen, why; empty on a placement that kept N+1 on its first choice.</param>
public sealed record VmPlacement(
    string VmName,
    string? Host,
    string Reason,
    bool BreaksNPlusOne,
    IReadOnlyList<ServerRejection> Rejections)
{
    public bool Placed => Host is not null;
}

/// <summary>The outcome of <see cref="Scheduler.PlaceMirrorLegs"/>.</summary>
/// <param name="First">The disk server with more free space; null when refused.</param>
/// <param name="DomainsSeparated">False when the two legs share a failure domain (the best the cluster allows).</param>
public sealed record MirrorLegsPlacement(
    string? First,
    string? Second,
    bool DomainsSeparated,
    string Reason,
    IReadOnlyList<ServerRejection> Rejections)
{
    public bool Placed => First is not null;
}

/// <summary>The outcome of <see cref="Scheduler.PlaceReplacementLeg"/>.</summary>
/// <param name="Server">The disk server for the new leg; null when refused.</param>
/// <param name="DomainsSeparated">False when the new leg shares a failure domain with the staying one (the best the cluster allows).</param>
public sealed record ReplacementLegPlacement(
    string? Server,
    bool DomainsSeparated,
    string Reason,
    IReadOnlyList<ServerRejection> Rejections)
{
    public bool Placed => Server is not null;
}

/// <summary>One VM moving in an evacuation or failover plan.</summary>
public sealed record VmMove(string VmName, string FromHost, string ToHost, string Reason);

/// <summary>A VM an evacuation or failover plan could not place, with the placement's answer.</summary>
public sealed record UnplacedVm(string VmName, VmPlacement Refusal);

/// <summary>
/// The outcome of <see cref="Scheduler.PlanEvacuation"/> and <see cref="Scheduler.PlanFailover"/>. Moves are in the order
/// they were planned (largest VM first); each assumes the ones before it happened.
/// </summary>
public sealed record MovePlan(
    string Host,
    IReadOnlyList<VmMove> Moves,
    IReadOnlyList<UnplacedVm> Unplaced,
    string Reason)
{
    /// <summary>True when every VM of the host has a destination.</summary>
    public bool Complete => Unplaced.Count == 0;
}

/// <summary>What one CPU server has left.</summary>
/// <param name="FreeRamMiB">Usable RAM (installed minus reserved) minus the VMs' RAM.</param>
/// <param name="FreeVcpus">vCPU capacity (cores times the overcommit ratio) minus the VMs' vCPUs.</param>
public sealed record HostHeadroom(string Host, ServerState State, int VmCount, long FreeRamMiB, int FreeVcpus);

/// <summary>The outcome of <see cref="Scheduler.Capacity"/>.</summary>
/// <param name="AdditionalKeepingNPlusOne">VMs of this size that can still be placed one after another while keeping N+1.</param>
/// <param name="AdditionalWithoutNPlusOne">The same count when N+1 is not kept (every host filled).</param>
/// <param name="AdditionalDisks">
/// Mirrored disks of <see cref="VmSize.DiskBytes"/> that fit, legs in different failure domains (null when DiskBytes is 0).
/// It is counted up to <paramref name="AdditionalWithoutNPlusOne"/>, the most the hosts could use.
/// </param>
public sealed record CapacityReport(
    VmSize Size,
    int AdditionalKeepingNPlusOne,
    int AdditionalWithoutNPlusOne,
    int? AdditionalDisks,
    IReadOnlyList<HostHeadroom> Hosts)
{
    /// <summary>VMs (with their disk) that fit while keeping N+1: the smaller of the host and disk figures.</summary>
    public int AdditionalVms => AdditionalDisks is int d ? Math.Min(d, AdditionalKeepingNPlusOne) : AdditionalKeepingNPlusOne;
}
