using XenAoe.Aoe;

namespace XenAoe.Target;

/// <summary>
/// Recent write outcomes keyed by (initiator MAC, tag, target, LBA, count, first 8 data bytes), so a retransmitted write is answered from here instead of
/// being applied again after a later write to the same sectors. Direct-mapped and fixed-size: no allocation, a collision simply evicts.
/// An entry is marked in-progress before the write starts, so a duplicate that races the original on another worker is dropped
/// (the initiator retransmits again and then finds the finished entry). Entries expire after <see cref="Lifetime"/>, so an initiator
/// that reuses a tag much later for a new write is never answered from here. Thread-safe through striped locks.
/// </summary>
public sealed class ReplyCache
{
    public static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(30);

    private const int StateEmpty = 0, StateInProgress = 1, StateDone = 2;
    private const int LockStripes = 64;

    private readonly Entry[] _entries;
    private readonly int _mask;
    private readonly object[] _locks;
    private readonly TimeProvider _time;
    private readonly long _lifetimeTicks;

    public ReplyCache(int capacity = 4096, TimeProvider? time = null)
    {
        capacity = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(capacity, LockStripes));
        _entries = new Entry[capacity];
        _mask = capacity - 1;
        _locks = new object[LockStripes];
        for (var i = 0; i < _locks.Length; i++)
            _locks[i] = new object();
        _time = time ?? TimeProvider.System;
        _lifetimeTicks = (long)(Lifetime.TotalSeconds * _time.TimestampFrequency);
    }

    public enum Lookup
    {
        /// <summary>First sight: the caller performs the write and then calls <see cref="Complete"/>.</summary>
        New,

        /// <summary>A retransmission of a finished write: answer with the cached outcome, do not write.</summary>
        Done,

        /// <summary>A retransmission of a write still being applied: drop it.</summary>
        InProgress,
    }

    public Lookup Begin(in Key key, out byte error)
    {
        var index = key.Hash() & _mask;
        var now = _time.GetTimestamp();
        lock (_locks[index & (LockStripes - 1)])
        {
            ref var e = ref _entries[index];
            if (e.State != StateEmpty && e.Key == key && now - e.Timestamp < _lifetimeTicks)
            {
                error = e.Error;
                return e.State == StateDone ? Lookup.Done : Lookup.InProgress;
            }
            e = new Entry { Key = key, State = StateInProgress, Timestamp = now };
            error = 0;
            return Lookup.New;
        }
    }

    public void Complete(in Key key, byte error)
    {
        var index = key.Hash() & _mask;
        lock (_locks[index & (LockStripes - 1)])
        {
            ref var e = ref _entries[index];
            if (e.Key == key)
            {
                e.State = StateDone;
                e.Error = error;
            }
        }
    }

    public readonly record struct Key(MacAddress Initiator, uint Tag, ushort Shelf, byte Slot, byte Count, ulong Lba, ulong DataHead)
    {
        public int Hash() => (int)(uint)HashCode.Combine(Initiator.Value, Tag, Shelf, Slot, Lba);
    }

    private struct Entry
    {
        public Key Key;
        public long Timestamp;
        public int State;
        public byte Error;
    }
}
