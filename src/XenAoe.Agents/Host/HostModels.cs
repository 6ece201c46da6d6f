using System.Text.Json.Serialization;
using XenAoe.Agents.Disk;
using XenAoe.Hypervisors;

namespace XenAoe.Agents.Host;

/// <summary>A VM as a CPU server is asked to run it: hypervisor-neutral, with disks named by their mirror legs.</summary>
/// <param name="VncDisplay">VNC display on the host's management address (port 5900 + display); null: a unix socket only.</param>
public sealed record VmDefinition(
    string Name,
    Guid Uuid,
    int Cpus,
    int MemoryMiB,
    VmBoot Boot,
    IReadOnlyList<VmDiskDefinition> Disks,
    IReadOnlyList<VmNicDefinition> Nics,
    int? VncDisplay = null);

/// <summary>A virtio disk: a RAID1 mirror over two AoE volumes (addresses such as <c>e1.0</c>) on two disk servers.</summary>
public sealed record VmDiskDefinition(string Id, IReadOnlyList<string> Legs, bool ReadOnly = false);

/// <summary>A virtio NIC on a TAP device the host creates on its VM bridge.</summary>
public sealed record VmNicDefinition(string Id, string Mac);

/// <param name="TakeOver">Force the disks' reservations even if another host holds them: only for a host known dead and fenced.</param>
/// <param name="AllowDegraded">Start with one leg of a mirror when the other does not answer.</param>
public sealed record StartVmRequest(VmDefinition Vm, bool TakeOver = false, bool AllowDegraded = false);

public sealed record StopVmRequest(double? GracefulSeconds = null);

/// <summary>Source: send the VM's memory to the incoming copy a destination prepared (see <see cref="IncomingVmResponse"/>).</summary>
/// <param name="MigrationUri">The destination's <see cref="IncomingVmResponse.MigrationUri"/>.</param>
public sealed record StartMigrationRequest(string MigrationUri, double? DowntimeLimitMs = null);

/// <summary>Source, after the hand-over: how long ending the paused copy and closing its mirrors took (milliseconds); both null when the source held no copy any more.</summary>
public sealed record HandoverResponse(double? QuitMs, double? ClosedMs);

/// <summary>What a migration destination needs: the VM and its disks' sizes (the NBD exports exist before the mirrors are assembled).</summary>
public sealed record IncomingVmRequest(VmDefinition Vm, IReadOnlyList<long> DiskSizes);

/// <param name="MigrationUri">Where the source hypervisor sends the VM, e.g. <c>tcp:10.77.0.22:49152</c>.</param>
public sealed record IncomingVmResponse(string MigrationUri);

/// <summary>Formats two fresh volumes as a new mirror (from this host, which reaches both over AoE) and writes a raw image onto it.</summary>
/// <param name="ImagePath">A raw disk image on this host; null leaves the disk empty.</param>
public sealed record FormatDiskRequest(IReadOnlyList<string> Legs, string? ImagePath);

/// <param name="SizeBytes">The mirrored size the VM sees.</param>
public sealed record FormatDiskResponse(long SizeBytes, long ImageBytes);

/// <summary>A CPU server's resources and identity.</summary>
public sealed record HostInfo(
    string Name,
    string? ApiUrl,
    int Cpus,
    long MemoryMiB,
    long MemoryAvailableMiB,
    int MemoryCommittedMiB,
    IReadOnlyList<StorageNic> StorageNics,
    string Hypervisor,
    int Vms);

/// <summary>A VM disk's data path as its host sees it.</summary>
public enum DiskHealth
{
    /// <summary>Both legs in sync.</summary>
    [JsonStringEnumMemberName("healthy")] Healthy,

    /// <summary>Both legs present, one being brought up to date.</summary>
    [JsonStringEnumMemberName("resyncing")] Resyncing,

    /// <summary>Running on one leg.</summary>
    [JsonStringEnumMemberName("degraded")] Degraded,

    /// <summary>An incoming migration's disk: legs joined, nothing written until the source hands over.</summary>
    [JsonStringEnumMemberName("standby")] Standby,
}

/// <summary>What a host does with a VM.</summary>
public enum VmRole
{
    [JsonStringEnumMemberName("running")] Running,

    /// <summary>The destination of a migration, waiting for the source to hand over.</summary>
    [JsonStringEnumMemberName("incoming")] Incoming,

    /// <summary>The source of a migration in progress.</summary>
    [JsonStringEnumMemberName("migrating")] Migrating,
}

/// <summary>Where a migration is, as its source reports it.</summary>
public enum MigrationPhase
{
    /// <summary>The hypervisor is sending the memory; the VM runs here.</summary>
    [JsonStringEnumMemberName("transferring")] Transferring,

    /// <summary>The memory is on the destination, whose copy now runs (its I/O waiting); this copy is paused until the hand-over.</summary>
    [JsonStringEnumMemberName("transferred")] Transferred,

    /// <summary>The hypervisor gave up (or was cancelled); the VM runs here again once the migration is cancelled.</summary>
    [JsonStringEnumMemberName("failed")] Failed,
}

/// <param name="ResyncDoneBytes">Bytes copied by the resync in progress (or the last one); with <paramref name="ResyncTotalBytes"/>, its progress.</param>
/// <param name="Paths">Every network path to every leg (one per storage NIC), as the initiator sees it.</param>
public sealed record VmDiskStatus(string Id, IReadOnlyList<string> Legs, string Export, DiskHealth Health, long SizeBytes, long DirtyRegions, string? Detail,
    long ResyncDoneBytes = 0, long ResyncTotalBytes = 0, IReadOnlyList<VmDiskPath>? Paths = null);

/// <summary>One path from this host to a leg: the local storage NIC, its state, and frames re-sent on it.</summary>
public sealed record VmDiskPath(string Leg, string Interface, PathState State, long Retransmissions);

/// <summary>An AoE path's state (<see cref="Initiator.AoePathState"/>).</summary>
public enum PathState
{
    /// <summary>Answering; carries I/O.</summary>
    [JsonStringEnumMemberName("up")] Up,

    /// <summary>A frame timed out since its last answer: used only when no up path has room, and probed.</summary>
    [JsonStringEnumMemberName("suspect")] Suspect,

    /// <summary>No answer for the path timeout: carries nothing, probed until it answers.</summary>
    [JsonStringEnumMemberName("down")] Down,
}

/// <summary>Replaces leg <paramref name="Index"/> of a running VM's disk by the volume at <paramref name="Address"/> (full copy in the background).</summary>
public sealed record ReplaceLegRequest(int Index, string Address);

/// <summary>One VM on this host: the hypervisor's view plus its disks' data paths and any migration.</summary>
public sealed record VmStatus(
    string Name,
    Guid Uuid,
    VmRole Role,
    string State,
    string StateDetail,
    int? Pid,
    string Accelerator,
    int Cpus,
    int MemoryMiB,
    VmConsoles? Consoles,
    IReadOnlyList<VmDiskStatus> Disks,
    IReadOnlyList<VmNicDefinition> Nics,
    MigrationReport? Migration);

/// <summary>A migration as its source's hypervisor reports it. Times in milliseconds.</summary>
/// <param name="MigrationUri">Where the memory goes: the destination's incoming copy.</param>
/// <param name="DowntimeMs">The guest's pause as the hypervisor reports it.</param>
public sealed record MigrationReport(
    string MigrationUri,
    MigrationPhase Phase,
    string? HypervisorState,
    double? TotalMs,
    double? DowntimeMs,
    long? RamTransferred,
    long? RamTotal,
    string? Error);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, UseStringEnumConverter = true)]
[JsonSerializable(typeof(StartVmRequest))]
[JsonSerializable(typeof(StopVmRequest))]
[JsonSerializable(typeof(StartMigrationRequest))]
[JsonSerializable(typeof(HandoverResponse))]
[JsonSerializable(typeof(IncomingVmRequest))]
[JsonSerializable(typeof(IncomingVmResponse))]
[JsonSerializable(typeof(HostInfo))]
[JsonSerializable(typeof(VmStatus))]
[JsonSerializable(typeof(IReadOnlyList<VmStatus>))]
[JsonSerializable(typeof(VmDefinition))]
[JsonSerializable(typeof(MigrationReport))]
[JsonSerializable(typeof(FormatDiskRequest))]
[JsonSerializable(typeof(FormatDiskResponse))]
[JsonSerializable(typeof(ReplaceLegRequest))]
[JsonSerializable(typeof(ErrorResponse))]
public sealed partial class HostApiJsonContext : JsonSerializerContext;

/// <summary>A request the host refuses, with the HTTP status it maps to.</summary>
public sealed class HostException(string message, int status = 400, Exception? inner = null) : Exception(message, inner)
{
    public int Status { get; } = status;

    public static HostException NotFound(string vm) => new($"no VM '{vm}' on this host", 404);

    public static HostException Conflict(string message) => new(message, 409);
}
