using System.Text.Json;
using System.Text.Json.Serialization;
using XenAoe.Agents;
using XenAoe.Hypervisors;

namespace XenAoe.Control.Model;

public enum HostState
{
    /// <summary>Answers its heartbeat; may run VMs.</summary>
    Up,

    /// <summary>Silent for longer than the dead time: fenced, its VMs restarted elsewhere.</summary>
    Dead,

    /// <summary>Being evacuated or evacuated: runs nothing new.</summary>
    Maintenance,
}

/// <summary>A CPU server in the inventory. <see cref="StorageMacs"/> are what its disks' reservations list while it runs a VM.</summary>
public sealed record HostRecord
{
    public required string Name { get; init; }
    public required string ApiUrl { get; init; }
    public Dictionary<string, string> Labels { get; init; } = [];
    public HostState State { get; init; } = HostState.Up;
    public int Cpus { get; init; }
    public long MemoryMiB { get; init; }
    public IReadOnlyList<StorageNic> StorageNics { get; init; } = [];
    public DateTimeOffset? LastSeen { get; init; }
    public string? StateReason { get; init; }

    /// <summary>When the host last registered (at every start of its daemon, or by hand).</summary>
    public DateTimeOffset? RegisteredAt { get; init; }

    [JsonIgnore]
    public IEnumerable<string> StorageMacs => StorageNics.Select(n => n.Mac);
}

/// <summary>A disk server in the inventory; <see cref="Shelf"/> is the AoE shelf of every volume it exports.</summary>
public sealed record DiskServerRecord
{
    public required string Name { get; init; }
    public required string ApiUrl { get; init; }
    public required ushort Shelf { get; init; }
    public Dictionary<string, string> Labels { get; init; } = [];
    public IReadOnlyList<StorageNic> StorageNics { get; init; } = [];
    public long FreeBytes { get; init; }

    /// <summary>The size of the pool's file system.</summary>
    public long TotalBytes { get; init; }

    public bool Reachable { get; init; } = true;

    /// <summary>When the server last registered (at every start of its daemon, or by hand).</summary>
    public DateTimeOffset? RegisteredAt { get; init; }

    /// <summary>Being drained or drained (<c>xenaoe disk drain</c>): takes no new legs, even after a restart; <c>xenaoe disk remove</c> ends it.</summary>
    public bool Draining { get; init; }

    /// <summary>
    /// Volumes whose reservation a failover could not set because this server did not answer: set to their VM's current
    /// host the moment it answers again, before anything else is asked of it.
    /// </summary>
    public IReadOnlyList<PendingFence> PendingFences { get; init; } = [];
}

/// <summary>A fence owed: the reservation of <paramref name="Volume"/> must name the current host of <paramref name="Vm"/> (or nobody).</summary>
public sealed record PendingFence(string Vm, string Volume);

/// <summary>One leg of a VM disk: a volume on a disk server and its AoE address.</summary>
public sealed record LegRecord(string DiskServer, string Volume, string Address);

public sealed record VmDiskRecord(string Id, long SizeBytes, IReadOnlyList<LegRecord> Legs);

public enum VmDesiredState
{
    Running,
    Stopped,
}

/// <summary>A VM's desired state and where it runs. <see cref="Host"/> is null while it runs nowhere.</summary>
public sealed record VmRecord
{
    public required string Name { get; init; }
    public required Guid Uuid { get; init; }
    public required int Cpus { get; init; }
    public required int MemoryMiB { get; init; }
    public required VmBoot Boot { get; init; }
    public required IReadOnlyList<VmDiskRecord> Disks { get; init; }
    public IReadOnlyList<string> Macs { get; init; } = [];
    public int? VncDisplay { get; init; }
    public VmDesiredState Desired { get; init; } = VmDesiredState.Running;
    public string? Host { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>The cluster's identity, created once by <c>xenaoe cluster init</c> (<c>meta/cluster</c>).</summary>
public sealed record ClusterRecord(string Id, DateTimeOffset CreatedAt);

/// <summary>A machine that joined with a token.</summary>
public sealed record JoinUse(string Name, string Role, DateTimeOffset At);

/// <summary>
/// A join token (<c>join-tokens/ID</c>): the token is <c>ID.SECRET</c>; only the SHA-256 of the secret is stored, so neither the
/// store nor its backups can join a machine. Valid for any number of joins until <see cref="ExpiresAt"/> or its revocation.
/// </summary>
public sealed record JoinTokenRecord(string Id, string SecretSha256, DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt, IReadOnlyList<JoinUse> Joined);

public enum JobState
{
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// <summary>One step of a job. <paramref name="Result"/> is the step's typed outcome (a placement, an address), which a resumed job reads back instead of running the step again.</summary>
public sealed record JobStep(string Name, JobState State, DateTimeOffset? StartedAt = null, DateTimeOffset? FinishedAt = null, string? Detail = null,
    JsonElement? Result = null);

public sealed record JobLogLine(DateTimeOffset At, string Text);

/// <summary>
/// A user action (or the controller's own, such as a failover) as a persisted job of steps. Each step is recorded when it
/// starts and when it ends, so a controller that dies mid-job leaves a record the next leader resumes from: steps are written
/// to be safe to run again. <see cref="Parameters"/> are the typed parameters of <see cref="Kind"/> (see <c>Jobs/JobKinds.cs</c>)
/// in the layout <see cref="Format"/> names: a controller reads the formats it knows and fails a job it cannot read, saying why.
/// </summary>
public sealed record JobRecord
{
    /// <summary>The record layout this controller writes. 0: parameters as a string map, steps without results (before typed jobs).</summary>
    public const int CurrentFormat = 1;

    public required string Id { get; init; }
    public required string Kind { get; init; }
    public required string Target { get; init; }
    public int Format { get; init; }
    public JsonElement? Parameters { get; init; }
    public JobState State { get; init; } = JobState.Pending;
    public IReadOnlyList<JobStep> Steps { get; init; } = [];
    public IReadOnlyList<JobLogLine> Log { get; init; } = [];
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }
    public string? Owner { get; init; }
    public int Attempts { get; init; }
    public string? Error { get; init; }

    [JsonIgnore]
    public bool IsFinished => State is JobState.Succeeded or JobState.Failed;
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, UseStringEnumConverter = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(HostRecord))]
[JsonSerializable(typeof(DiskServerRecord))]
[JsonSerializable(typeof(VmRecord))]
[JsonSerializable(typeof(JobRecord))]
[JsonSerializable(typeof(ClusterRecord))]
[JsonSerializable(typeof(JoinTokenRecord))]
[JsonSerializable(typeof(List<HostRecord>))]
[JsonSerializable(typeof(List<DiskServerRecord>))]
[JsonSerializable(typeof(List<VmRecord>))]
[JsonSerializable(typeof(List<JobRecord>))]
public sealed partial class ControlJsonContext : JsonSerializerContext;
