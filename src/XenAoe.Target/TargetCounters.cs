using System.Diagnostics.Metrics;

namespace XenAoe.Target;

/// <summary>
/// What the target saw, counted (never logged) per frame. Plain fields updated with Interlocked so the CLI/API can read a snapshot;
/// the same values are published as observable counters on the "XenAoe.Target" meter.
/// </summary>
public sealed class TargetCounters
{
    public long FramesReceived;
    public long RepliesSent;
    public long NotForUs;
    public long Truncated;
    public long BadVersion;
    public long UnknownCommand;
    public long BadArgument;
    public long MaskedOut;
    public long Reserved;
    public long OutOfRange;
    public long TooManySectors;
    public long UnsupportedAta;
    public long IoErrors;
    public long DuplicatesAnswered;
    public long SectorsRead;
    public long SectorsWritten;
    public long Flushes;

    /// <summary>fdatasync calls: one per volume per group of write-through writes (and FLUSHes) that no other sync covered.</summary>
    public long Syncs;

    /// <summary>Replies that waited for a sync: write-through writes and FLUSHes.</summary>
    public long SyncedReplies;
    public long SendErrors;

    public static readonly Meter Meter = new("XenAoe.Target");

    public TargetCounters()
    {
        foreach (var (name, read) in Snapshot())
            Meter.CreateObservableCounter($"xenaoe.target.{name}", read);
    }

    /// <summary>Name and reader of every counter, in a stable order.</summary>
    public IEnumerable<(string Name, Func<long> Read)> Snapshot()
    {
        yield return ("frames_received", () => Volatile.Read(ref FramesReceived));
        yield return ("replies_sent", () => Volatile.Read(ref RepliesSent));
        yield return ("not_for_us", () => Volatile.Read(ref NotForUs));
        yield return ("truncated", () => Volatile.Read(ref Truncated));
        yield return ("bad_version", () => Volatile.Read(ref BadVersion));
        yield return ("unknown_command", () => Volatile.Read(ref UnknownCommand));
        yield return ("bad_argument", () => Volatile.Read(ref BadArgument));
        yield return ("masked_out", () => Volatile.Read(ref MaskedOut));
        yield return ("reserved", () => Volatile.Read(ref Reserved));
        yield return ("out_of_range", () => Volatile.Read(ref OutOfRange));
        yield return ("too_many_sectors", () => Volatile.Read(ref TooManySectors));
        yield return ("unsupported_ata", () => Volatile.Read(ref UnsupportedAta));
        yield return ("io_errors", () => Volatile.Read(ref IoErrors));
        yield return ("duplicates_answered", () => Volatile.Read(ref DuplicatesAnswered));
        yield return ("sectors_read", () => Volatile.Read(ref SectorsRead));
        yield return ("sectors_written", () => Volatile.Read(ref SectorsWritten));
        yield return ("flushes", () => Volatile.Read(ref Flushes));
        yield return ("syncs", () => Volatile.Read(ref Syncs));
        yield return ("synced_replies", () => Volatile.Read(ref SyncedReplies));
        yield return ("send_errors", () => Volatile.Read(ref SendErrors));
    }
}
