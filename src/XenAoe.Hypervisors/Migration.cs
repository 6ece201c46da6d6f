using System.Text.Json;

namespace XenAoe.Hypervisors;

/// <param name="DowntimeLimit">Longest pause the final switch-over may take; QEMU keeps iterating until it can meet it. Default 300 ms.</param>
/// <param name="MaxBandwidth">Bytes per second the migration stream may use. Default 10 GB/s (effectively unlimited).</param>
public sealed record MigrationOptions(TimeSpan DowntimeLimit, long MaxBandwidth)
{
    public MigrationOptions()
        : this(TimeSpan.FromMilliseconds(300), 10_000_000_000)
    {
    }

    public static MigrationOptions Default { get; } = new();
}

public enum MigrationState
{
    None,
    Setup,
    Active,
    Completed,
    Failed,
    Cancelled,
}

/// <summary>A migration's progress on the source, as QEMU's <c>query-migrate</c> reports it.</summary>
/// <param name="RawState">QEMU's state word (e.g. <c>pre-switchover</c>, <c>cancelling</c>), finer than <see cref="State"/>.</param>
/// <param name="TotalTime">Since the migration began (to the end once completed).</param>
/// <param name="Downtime">How long the guest was paused for the switch-over; only once completed.</param>
/// <param name="ExpectedDowntime">QEMU's estimate while active.</param>
/// <param name="RamTransferred">Bytes sent so far.</param>
/// <param name="RamRemaining">Bytes still dirty.</param>
/// <param name="RamTotal">Guest RAM size in bytes.</param>
public sealed record MigrationStatus(
    MigrationState State,
    string RawState,
    TimeSpan? TotalTime,
    TimeSpan? Downtime,
    TimeSpan? ExpectedDowntime,
    long? RamTransferred,
    long? RamRemaining,
    long? RamTotal,
    string? Error)
{
    public static MigrationStatus None { get; } = new(MigrationState.None, "none", null, null, null, null, null, null, null);

    public bool IsFinished => State is MigrationState.Completed or MigrationState.Failed or MigrationState.Cancelled;

    /// <summary>Parses the <c>return</c> object of <c>query-migrate</c>; an empty object (no migration yet) is <see cref="None"/>.</summary>
    public static MigrationStatus Parse(JsonElement reply)
    {
        if (reply.ValueKind != JsonValueKind.Object)
            throw new FormatException($"query-migrate returned {reply.ValueKind}, expected an object.");
        if (!reply.TryGetProperty("status", out var status))
            return None;
        var raw = status.GetString() ?? "none";
        long? transferred = null, remaining = null, total = null;
        if (reply.TryGetProperty("ram", out var ram) && ram.ValueKind == JsonValueKind.Object)
        {
            transferred = Int64(ram, "transferred");
            remaining = Int64(ram, "remaining");
            total = Int64(ram, "total");
        }
        return new MigrationStatus(
            MapState(raw),
            raw,
            Millis(reply, "total-time"),
            Millis(reply, "downtime"),
            Millis(reply, "expected-downtime"),
            transferred,
            remaining,
            total,
            reply.TryGetProperty("error-desc", out var error) ? error.GetString() : null);
    }

    /// <summary>QEMU's MigrationStatus enum (qapi/migration.json) folded into the six states callers act on.</summary>
    internal static MigrationState MapState(string raw) => raw switch
    {
        "none" => MigrationState.None,
        "setup" => MigrationState.Setup,
        "completed" => MigrationState.Completed,
        "failed" => MigrationState.Failed,
        "cancelled" => MigrationState.Cancelled,
        // active, cancelling, postcopy-*, colo, pre-switchover, device, wait-unplug: still under way.
        _ => MigrationState.Active,
    };

    private static long? Int64(JsonElement parent, string name) =>
        parent.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var n) ? n : null;

    private static TimeSpan? Millis(JsonElement parent, string name) =>
        Int64(parent, name) is { } ms ? TimeSpan.FromMilliseconds(ms) : null;
}
