using System.Text.Json.Serialization;
using XenAoe.Control.Model;

namespace XenAoe.Control.Api;

public sealed record ApiError(string Error);

/// <summary>Whether this controller leads, and who does.</summary>
public sealed record ControllerHealth(string Name, bool Leader, string? LeaderName, string Store);

/// <param name="ApiUrl">The host daemon's management URL, e.g. <c>http://10.77.0.21:7300</c>.</param>
/// <param name="Labels">Failure domains and the like, e.g. <c>switch=a</c>, <c>power=1</c>.</param>
public sealed record RegisterHostRequest(string Name, string ApiUrl, Dictionary<string, string>? Labels = null);

/// <param name="Shelf">The AoE shelf of the server's volumes (unique per disk server).</param>
public sealed record RegisterDiskServerRequest(string Name, string ApiUrl, ushort Shelf, Dictionary<string, string>? Labels = null);

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
