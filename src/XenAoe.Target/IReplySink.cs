using XenAoe.Aoe;
using XenAoe.Storage;

namespace XenAoe.Target;

/// <summary>Where the engine writes replies: a slot of a send batch on the hot path, a list in tests. A struct implementation avoids a virtual call per frame.</summary>
public interface IReplySink
{
    /// <summary>A buffer of at least <see cref="LinkInfo.FrameSize"/> bytes for the next reply; its contents are undefined.</summary>
    Span<byte> Next();

    /// <summary>Marks the buffer returned by <see cref="Next"/> as a reply of <paramref name="length"/> bytes (already padded).</summary>
    void Commit(int length);

    /// <summary>
    /// Marks the buffer returned by <see cref="Next"/> as a reply of <paramref name="length"/> bytes (already padded, at most
    /// <see cref="AoeProtocol.MinimumFrameLength"/>: an ATA reply without data) that may leave only once <paramref name="sync"/>
    /// is durable, and, if that fails, leaves as <see cref="PendingSync.MarkFailed"/> rewrites it. The sink may copy the reply
    /// out: the buffer is free again on return.
    /// </summary>
    void CommitAfterSync(int length, in PendingSync sync);
}

/// <summary>The NIC a frame arrived on: our address there and how many sectors fit a frame on its link.</summary>
public readonly record struct LinkInfo(MacAddress LocalMac, int Mtu)
{
    public int MaxSectors => AoeProtocol.SectorsPerFrame(Mtu);

    /// <summary>Largest Ethernet frame (without FCS) the link carries.</summary>
    public int FrameSize => Mtu + 14;
}

/// <summary>
/// What a reply waits for: writes <see cref="First"/>..<see cref="Last"/> of <see cref="Store"/> durable
/// (<see cref="BackingStore.MakeDurable"/>). The reply to a write on a write-through volume waits for that write; the reply
/// to FLUSH CACHE waits for every write completed before it.
/// </summary>
public readonly record struct PendingSync(BackingStore Store, long First, long Last)
{
    /// <summary>Makes the writes durable now; for sinks that do not group (tests). Rewrites the reply when that fails.</summary>
    public void Complete(Span<byte> reply)
    {
        if (Complete(Store, First, Last) == SyncOutcome.Failed)
            MarkFailed(reply);
    }

    /// <summary><see cref="BackingStore.MakeDurable"/>, with a store closed meanwhile (the volume was replaced) reported as a failure.</summary>
    public static SyncOutcome Complete(BackingStore store, long first, long last)
    {
        try
        {
            return store.MakeDurable(first, last);
        }
        catch (ObjectDisposedException)
        {
            return SyncOutcome.Failed;
        }
    }

    /// <summary>Rewrites an ATA reply whose writes may be lost as failed: DRDY|ERR with UNC, as a failed pwrite is reported.</summary>
    public static void MarkFailed(Span<byte> reply)
    {
        reply[25] = AtaStatus.Uncorrectable;
        reply[27] = AtaStatus.Ready | AtaStatus.Error;
    }
}
