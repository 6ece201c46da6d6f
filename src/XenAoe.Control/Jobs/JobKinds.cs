using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using XenAoe.Control.Model;

namespace XenAoe.Control.Jobs;

/// <summary>
/// A kind of job as the store knows it: its name (<c>vm-create</c>) and the type of its parameters. Submitting writes the
/// parameters through the source-generated JSON context; running reads them back, in the record's <see cref="JobRecord.Format"/>.
/// </summary>
public sealed class JobKind<TParameters>(string name, JsonTypeInfo<TParameters> type)
{
    public string Name { get; } = name;

    public JsonElement Write(TParameters parameters) => JsonSerializer.SerializeToElement(parameters, type);

    /// <summary>The record's parameters; a record this controller cannot read is a <see cref="JobRecordException"/> saying why.</summary>
    public TParameters Read(JobRecord job)
    {
        var element = job.Format switch
        {
            JobRecord.CurrentFormat => job.Parameters,
            0 => FromFormat0(job),
            _ => throw new JobRecordException(job, $"it was written by a newer controller (record format {job.Format}; this one reads up to {JobRecord.CurrentFormat})"),
        };
        try
        {
            return (element is { ValueKind: JsonValueKind.Object } e ? e.Deserialize(type) : JsonSerializer.Deserialize("{}", type))
                ?? throw new JobRecordException(job, "its parameters are null");
        }
        catch (JsonException e)
        {
            throw new JobRecordException(job, $"its parameters do not fit {Name}: {e.Message}");
        }
    }

    /// <summary>
    /// Format 0 kept parameters as strings (<c>"cpus": "1"</c>) and remembered decisions among them, with steps that carried no
    /// results. A pending job of that format is read (numbers and booleans parsed back); one that finished a step is not resumed,
    /// since the decisions its steps made are not in the form its steps now read.
    /// </summary>
    private static JsonElement? FromFormat0(JobRecord job)
    {
        if (job.Steps.FirstOrDefault(s => s.State == JobState.Succeeded) is { } done)
            throw new JobRecordException(job, $"it was started by an older controller (record format 0) and had finished step '{done.Name}'; run the operation again");
        if (job.Parameters is not { ValueKind: JsonValueKind.Object } old)
            return null;
        var converted = new JsonObject();
        foreach (var property in old.EnumerateObject())
        {
            var text = property.Value.ValueKind == JsonValueKind.String ? property.Value.GetString()! : property.Value.GetRawText();
            converted[property.Name] = long.TryParse(text, out var number) ? JsonValue.Create(number)
                : bool.TryParse(text, out var flag) ? JsonValue.Create(flag)
                : JsonValue.Create(text);
        }
        return JsonSerializer.SerializeToElement(converted, JobJsonContext.Default.JsonObject);
    }
}

/// <summary>A job record the controller cannot run as written: its job fails with this message instead of the runner.</summary>
public sealed class JobRecordException(JobRecord job, string why)
    : ControlException($"job {job.Id} ({job.Kind}) cannot be run by this controller: {why}", 409);

/// <summary>Every kind of job, with its parameters.</summary>
public static class JobKinds
{
    private static readonly JobJsonContext Json = JobJsonContext.Default;

    public static readonly JobKind<CreateVmParameters> VmCreate = new("vm-create", Json.CreateVmParameters);
    public static readonly JobKind<NoParameters> VmStart = new("vm-start", Json.NoParameters);
    public static readonly JobKind<StopVmParameters> VmStop = new("vm-stop", Json.StopVmParameters);
    public static readonly JobKind<NoParameters> VmReboot = new("vm-reboot", Json.NoParameters);
    public static readonly JobKind<MigrateVmParameters> VmMigrate = new("vm-migrate", Json.MigrateVmParameters);
    public static readonly JobKind<FailoverVmParameters> VmFailover = new("vm-failover", Json.FailoverVmParameters);
    public static readonly JobKind<NoParameters> VmDelete = new("vm-delete", Json.NoParameters);
    public static readonly JobKind<ReplaceLegParameters> VmReplaceLeg = new("vm-replace-leg", Json.ReplaceLegParameters);
    public static readonly JobKind<NoParameters> HostEvacuate = new("host-evacuate", Json.NoParameters);
    public static readonly JobKind<NoParameters> DiskDrain = new("disk-drain", Json.NoParameters);
}

public sealed record NoParameters;

/// <param name="Host">Run it there instead of where the scheduler would.</param>
/// <param name="Image">A raw image file on the chosen host, written onto the new mirror.</param>
public sealed record CreateVmParameters(int Cpus, int MemoryMiB, long DiskBytes, string Kernel, string? Initrd = null, string? Cmdline = null,
    string? Image = null, string? Host = null, string? Mac = null, int? VncDisplay = null);

/// <param name="Force">Kill instead of a graceful shutdown.</param>
public sealed record StopVmParameters(bool Force = false);

/// <param name="To">The destination host; null lets the scheduler choose.</param>
public sealed record MigrateVmParameters(string? To = null);

/// <param name="From">The host that died (the heartbeat monitor's failovers name it); null: wherever the record says.</param>
public sealed record FailoverVmParameters(string? From = null);

/// <summary>Which leg of which disk goes (by its disk server, or its index), and where to (null: the scheduler chooses).</summary>
public sealed record ReplaceLegParameters(string Disk = "root", string? From = null, int? Index = null, string? To = null);

/// <summary>The typed outcome of a job step, kept in the step so a resumed job reads it instead of deciding again.</summary>
public interface IStepResult
{
    /// <summary>One line for the job's step list.</summary>
    string Summary { get; }
}

/// <summary>Where a new VM runs and where its two legs go.</summary>
public sealed record VmPlacement(string Host, string Leg0Server, string Leg1Server, string Why) : IStepResult
{
    [JsonIgnore] public string Summary => $"on {Host}; legs on {Leg0Server} and {Leg1Server} ({Why})";
}

/// <summary>The volumes of a new mirror, in leg order.</summary>
public sealed record MirrorLegs(IReadOnlyList<LegRecord> Legs) : IStepResult
{
    [JsonIgnore] public string Summary => string.Join(" + ", Legs.Select(l => $"{l.DiskServer}:{l.Volume} ({l.Address})"));
}

/// <summary>The host a VM goes to; <paramref name="Note"/> says when that leaves the cluster without N+1.</summary>
public sealed record HostDecision(string Host, string? From = null, string Note = "") : IStepResult
{
    [JsonIgnore] public string Summary => From is null ? $"{Host}{Note}" : $"from {From} to {Host}{Note}";
}

/// <summary>A migration destination's incoming copy: where its hypervisor waits for the memory; null when the VM already ran there.</summary>
public sealed record IncomingCopy(string? MigrationUri) : IStepResult
{
    [JsonIgnore] public string Summary => MigrationUri is null ? "the VM already runs there" : $"waiting for the memory at {MigrationUri}";
}

/// <summary>The memory transfer as the source's hypervisor reported it (milliseconds, bytes); all null when the VM was already moved.</summary>
public sealed record TransferFigures(double? TotalMs, double? DowntimeMs, long? RamBytes) : IStepResult
{
    [JsonIgnore] public string Summary => TotalMs is null ? "nothing to send: the VM already runs on the destination"
        : $"memory sent in {TotalMs:0} ms ({RamBytes / (1 << 20)} MiB), downtime {DowntimeMs:0} ms";
}

/// <summary>When the source was asked to hand over, and how long ending its copy and closing its disks took (null: it had already).</summary>
public sealed record Handover(DateTimeOffset At, double? QuitMs, double? ClosedMs) : IStepResult
{
    [JsonIgnore] public string Summary => QuitMs is null ? "the source had already let the VM go" : $"source copy ended in {QuitMs:0} ms, disks closed after {ClosedMs:0} ms";
}

/// <summary>
/// A finished migration's figures (milliseconds): the transfer's total and downtime as the source's hypervisor reported them, and
/// the disk hand-over, from asking the source to let go to the destination's disks assembled (the guest's I/O waits this long).
/// </summary>
public sealed record MigrationFigures(double? TotalMs, double? DowntimeMs, double? HandoverMs) : IStepResult
{
    [JsonIgnore] public string Summary => $"total {TotalMs:0} ms, downtime {DowntimeMs:0} ms, disk hand-over {HandoverMs:0} ms";
}

/// <summary>What a migration that failed or was interrupted does.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<MigrationRecoveryPlan>))]
public enum MigrationRecoveryPlan
{
    /// <summary>The VM already runs on the destination: the source lets go (if it still holds it) and the VM is recorded there.</summary>
    Finish,

    /// <summary>The source still holds the VM: the destination's copy is aborted, then the source's migration cancelled.</summary>
    RollBack,

    /// <summary>The VM runs nowhere (its source died or let go and the destination cannot take it): fence, restart from its disk.</summary>
    Restart,
}

/// <param name="Host">Where the VM runs (Finish) or restarts (Restart); null for a roll-back.</param>
/// <param name="Why">The failure that led here.</param>
public sealed record MigrationRecovery(MigrationRecoveryPlan Plan, string? Host, string Why) : IStepResult
{
    [JsonIgnore] public string Summary => Plan switch
    {
        MigrationRecoveryPlan.Finish => $"the VM runs on {Host}: finishing ({Why})",
        MigrationRecoveryPlan.RollBack => $"rolling back, the VM stays on its source ({Why})",
        _ => $"restarting the VM from its disk on {Host} ({Why})",
    };
}

/// <summary>A leg replacement's decisions: which leg goes and to which disk server.</summary>
public sealed record LegMove(int Index, LegRecord Leaving, string Staying, string ToServer, long SizeBytes, string Why) : IStepResult
{
    [JsonIgnore] public string Summary =>
        $"leg {Index} on {Leaving.DiskServer}:{Leaving.Volume} ({Leaving.Address}) goes to {ToServer} ({Why}); {Staying} stays";
}

/// <summary>The new leg's volume.</summary>
public sealed record NewLeg(LegRecord Leg, long SizeBytes) : IStepResult
{
    [JsonIgnore] public string Summary => $"{Leg.DiskServer}:{Leg.Volume} ({Leg.Address}), {SizeBytes} bytes";
}

/// <summary>A VM disk named as <c>vm/disk</c>.</summary>
public sealed record VmDiskRef(string Vm, string Disk)
{
    public override string ToString() => $"{Vm}/{Disk}";
}

/// <summary>The VM disks with a leg on a draining disk server, listed once so a resumed drain moves the same ones.</summary>
public sealed record DrainPlan(IReadOnlyList<VmDiskRef> Disks) : IStepResult
{
    [JsonIgnore] public string Summary => Disks.Count == 0 ? "draining; no VM disk has a leg here"
        : $"draining; {Disks.Count} legs to move: {string.Join(", ", Disks)}";
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(NoParameters))]
[JsonSerializable(typeof(CreateVmParameters))]
[JsonSerializable(typeof(StopVmParameters))]
[JsonSerializable(typeof(MigrateVmParameters))]
[JsonSerializable(typeof(FailoverVmParameters))]
[JsonSerializable(typeof(ReplaceLegParameters))]
[JsonSerializable(typeof(VmPlacement))]
[JsonSerializable(typeof(MirrorLegs))]
[JsonSerializable(typeof(HostDecision))]
[JsonSerializable(typeof(IncomingCopy))]
[JsonSerializable(typeof(TransferFigures))]
[JsonSerializable(typeof(Handover))]
[JsonSerializable(typeof(MigrationFigures))]
[JsonSerializable(typeof(MigrationRecovery))]
[JsonSerializable(typeof(LegMove))]
[JsonSerializable(typeof(NewLeg))]
[JsonSerializable(typeof(DrainPlan))]
[JsonSerializable(typeof(JsonObject))]
public sealed partial class JobJsonContext : JsonSerializerContext;
