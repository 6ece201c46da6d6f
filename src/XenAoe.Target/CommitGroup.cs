using System.Diagnostics;
using XenAoe.Aoe;
using XenAoe.Net;
using XenAoe.Storage;

namespace XenAoe.Target;

/// <summary>
/// Group commit: replies that wait for a sync (<see cref="IReplySink.CommitAfterSync"/>) collect here while a worker keeps
/// handling frames; <see cref="Complete"/> then makes each volume of the group durable with at most one fdatasync, rewrites
/// the replies of a volume whose sync failed, and leaves them in <see cref="Replies"/> to send in one sendmmsg. Fixed size
/// and allocation-free. Not thread-safe: each worker owns one (the stores serialise syncs among workers).
/// </summary>
public sealed class CommitGroup : IDisposable
{
    private readonly TargetCounters _counters;
    private readonly BackingStore?[] _stores;
    private readonly long[] _first;
    private readonly long[] _last;
    private readonly bool[] _failed;
    private readonly int[] _storeOfReply;
    private int _storeCount;

    /// <param name="capacity">Replies a group holds (1..1024); a full group is completed before the next reply joins.</param>
    public CommitGroup(int capacity, TargetCounters counters)
    {
        _counters = counters;
        // Every deferred reply is an ATA reply without data, padded to the Ethernet minimum.
        Replies = new PacketBatch(capacity, AoeProtocol.MinimumFrameLength);
        _stores = new BackingStore?[capacity];
        _first = new long[capacity];
        _last = new long[capacity];
        _failed = new bool[capacity];
        _storeOfReply = new int[capacity];
    }

    /// <summary>The group's replies, in arrival order; after <see cref="Complete"/> they may be sent.</summary>
    public PacketBatch Replies { get; }

    public int Count => Replies.Count;
    public bool IsFull => Replies.IsFull;

    /// <summary><see cref="Stopwatch"/> timestamp of the group's first reply: how long its oldest write has waited.</summary>
    public long OpenedAt { get; private set; }

    /// <exception cref="InvalidOperationException">The group is full.</exception>
    public void Add(ReadOnlySpan<byte> reply, in PendingSync sync)
    {
        if (Replies.Count == 0)
            OpenedAt = Stopwatch.GetTimestamp();
        // Linear search: a group spans few volumes (one per initiator's disk in flight).
        var store = Array.IndexOf(_stores, sync.Store, 0, _storeCount);
        if (store < 0)
        {
            store = _storeCount++;
            _stores[store] = sync.Store;
            _first[store] = sync.First;
            _last[store] = sync.Last;
        }
        else
        {
            _first[store] = Math.Min(_first[store], sync.First);
            _last[store] = Math.Max(_last[store], sync.Last);
        }
        reply.CopyTo(Replies.Append());
        _storeOfReply[Replies.Count] = store;
        Replies.Commit(reply.Length);
    }

    /// <summary>Makes every write the group's replies wait for durable (one fdatasync per volume at most); blocks for the syncs.</summary>
    public void Complete()
    {
        var anyFailed = false;
        for (var i = 0; i < _storeCount; i++)
        {
            var outcome = PendingSync.Complete(_stores[i]!, _first[i], _last[i]);
            _failed[i] = outcome == SyncOutcome.Failed;
            anyFailed |= _failed[i];
            if (outcome == SyncOutcome.Synced)
                Interlocked.Increment(ref _counters.Syncs);
        }
        if (anyFailed)
        {
            for (var r = 0; r < Replies.Count; r++)
            {
                if (_failed[_storeOfReply[r]])
                {
                    PendingSync.MarkFailed(Replies.Frame(r));
                    Interlocked.Increment(ref _counters.IoErrors);
                }
            }
        }
        Interlocked.Add(ref _counters.SyncedReplies, Replies.Count);
    }

    /// <summary>Empties the group (after its replies were sent).</summary>
    public void Clear()
    {
        Replies.Clear();
        Array.Clear(_stores, 0, _storeCount);
        _storeCount = 0;
    }

    public void Dispose() => Replies.Dispose();
}
