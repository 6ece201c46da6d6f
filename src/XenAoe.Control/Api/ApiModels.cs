using System.Text.Json.Serialization;
using XenAoe.Agents;
using XenAoe.Control.Model;

namespace XenAoe.Control.Api;

public sealed record ApiError(string Error);

/// <summary>Whether this controller leads, and who does.</summary>
public sealed record ControllerHealth(string Name, bool Leader, string? LeaderName, string Store);

/// <param name="TtlSeconds">How long the token joins machines; default an hour.</param>
public sealed record CreateJoinTokenRequest(double? TtlSeconds = null);

/// <param name="Token">The join token, <c>ID.SECRET</c>: shown only in this answer.</param>
public sealed record JoinTokenCreated(string Id, string Token, DateTimeOffset ExpiresAt, string ClusterId);

/// <summary>A join token as listed: never its secret.</summary>
public sealed record JoinTokenInfo(string Id, DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt, bool Expired, IReadOnlyList<JoinUse> Joined);

/// <summary>A machine joining: its join token, its role (<c>disk</c> or <c>cpu</c>) and the name it will register under.</summary>
public sealed record JoinRequest(string Token, string Role, string Name);

/// <param name="ClusterToken">The cluster's API token: the machine's daemon registers with it and the controller calls it with it.</param>
/// <param name="At">The controller's clock at the exchange: a record registered since is the joining machine's.</param>
public sealed record JoinResponse(string ClusterId, string ClusterToken, DateTimeOffset At);

/// <summary>A new VM from an image: its root disk is a new mirror over two disk servers with the image written onto it.</summary>
/// <param name="Image">Raw root-disk image on the CPU servers (the lab's guest image).</param>
/// <param name="Host">Where to run it; null lets the scheduler choose.</param>
public sealed record CreateVmRequest(
    string Name,
    int Cpus,
    int MemoryMiB,
    long DiskBytes,
    string Kernel,
    string? Initrd,
    string? Cmdline,
    string? Image,
    string? Host = null,
    string? Mac = null,
    int? VncDisplay = null);

/// <param name="To">Destination host; null lets the scheduler choose.</param>
public sealed record MigrateRequest(string? To = null);

public sealed record StopRequest(bool Force = false);

/// <summary>Moves one leg of a running VM's disk to another disk server (a full copy while the VM runs).</summary>
/// <param name="From">The disk server whose leg goes (or give <paramref name="Index"/>).</param>
/// <param name="To">The disk server for the new leg; null lets the scheduler choose (not either current one, another failure domain if it can).</param>
public sealed record ReplaceVmLegRequest(string? From = null, string? To = null, int? Index = null);

/// <summary>How many more VMs of a size fit, with and without keeping N+1.</summary>
public sealed record CapacityResponse(int Cpus, int MemoryMiB, long DiskBytes, int FitWithNPlusOne, int FitWithoutNPlusOne, string Explanation,
    IReadOnlyList<HostFree> Hosts);

public sealed record HostFree(string Host, string State, int Vms, long FreeMemoryMiB, int FreeCpus);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, UseStringEnumConverter = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ApiError))]
[JsonSerializable(typeof(ControllerHealth))]
[JsonSerializable(typeof(RegisterHostRequest))]
[JsonSerializable(typeof(RegisterDiskServerRequest))]
[JsonSerializable(typeof(CreateJoinTokenRequest))]
[JsonSerializable(typeof(JoinTokenCreated))]
[JsonSerializable(typeof(IReadOnlyList<JoinTokenInfo>))]
[JsonSerializable(typeof(JoinRequest))]
[JsonSerializable(typeof(JoinResponse))]
[JsonSerializable(typeof(ClusterRecord))]
[JsonSerializable(typeof(CreateVmRequest))]
[JsonSerializable(typeof(MigrateRequest))]
[JsonSerializable(typeof(StopRequest))]
[JsonSerializable(typeof(ReplaceVmLegRequest))]
[JsonSerializable(typeof(CapacityResponse))]
[JsonSerializable(typeof(HostRecord))]
[JsonSerializable(typeof(DiskServerRecord))]
[JsonSerializable(typeof(VmRecord))]
[JsonSerializable(typeof(JobRecord))]
[JsonSerializable(typeof(IReadOnlyList<HostRecord>))]
[JsonSerializable(typeof(IReadOnlyList<DiskServerRecord>))]
[JsonSerializable(typeof(IReadOnlyList<VmRecord>))]
[JsonSerializable(typeof(IReadOnlyList<JobRecord>))]
public sealed partial class ApiJsonContext : JsonSerializerContext;
