using System.Runtime.Intrinsics;

namespace XenAoe.Target;

/// <summary>
/// Recent write outcomes (the ATA error and the write's sequence number in its store, so a retransmission of a write-through
/// write waits for the same sync as its original) keyed by (tag, target, LBA, count, fingerprint of the whole payload), so a retransmitted write
/// (byte-identical to its original) is answered from here instead of
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

    public Lookup Begin(in Key key, out byte error, out long sequence)
    {
        var index = key.Hash() & _mask;
        var now = _time.GetTimestamp();
        lock (_locks[index & (LockStripes - 1)])
        {
            ref var e = ref _entries[index];
            if (e.State != StateEmpty && e.Key == key && now - e.Timestamp < _lifetimeTicks)
            {
                error = e.Error;
                sequence = e.Sequence;
                return e.State == StateDone ? Lookup.Done : Lookup.InProgress;
            }
            e = new Entry { Key = key, State = StateInProgress, Timestamp = now };
            error = 0;
            sequence = 0;
            return Lookup.New;
        }
    }

    public void Complete(in Key key, byte error, long sequence)
    {
        var index = key.Hash() & _mask;
        lock (_locks[index & (LockStripes - 1)])
        {
            ref var e = ref _entries[index];
            if (e.Key == key)
            {
                e.State = StateDone;
                e.Error = error;
                e.Sequence = sequence;
            }
        }
    }

    public readonly record struct Key(uint Tag, ushort Shelf, byte Slot, byte Count, ulong Lba, ulong Fingerprint)
    {
        public int Hash() => (int)(uint)HashCode.Combine(Tag, Shelf, Slot, Lba);
    }

    /// <summary>
    /// A position-sensitive checksum of a whole payload (Fletcher-style running sums over 64-bit lanes, vectorised): a new write
    /// that reuses a tag for the same sectors within the lifetime differs in its data and so is never taken for a retransmission.
    /// About 0.1 ns per byte, against the microseconds a write costs.
    /// </summary>
    public static ulong Fingerprint(ReadOnlySpan<byte> data)
    {
        var lanes = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(data);
        var sum = Vector256<ulong>.Zero;
        var running = Vector256<ulong>.Zero;
        var i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 4 <= lanes.Length; i += 4)
            {
                sum += Vector256.Create(lanes.Slice(i, 4));
                running += sum;
            }
        }
        ulong a = 0, b = 0;
        for (; i < lanes.Length; i++)
        {
            a += lanes[i];
            b += a;
        }
        foreach (var tail in data[(lanes.Length * 8)..])
        {
            a += tail;
            b += a;
        }
        ulong h = (ulong)data.Length;
        for (var lane = 0; lane < 4; lane++)
            h = Mix(Mix(h ^ sum[lane]) ^ running[lane]);
        return Mix(Mix(h ^ a) ^ b);
    }

    private static ulong Mix(ulong x)
    {
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdUL;
        x ^= x >> 33;
        x *= 0xc4ceb9fe1a85ec53UL;
        return x ^ x >> 33;
    }

    private struct Entry
    {
        public Key Key;
        public long Timestamp;
        public long Sequence;
        public int State;
        public byte Error;
    }
}
