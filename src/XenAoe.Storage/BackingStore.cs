using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace XenAoe.Storage;

/// <summary>What <see cref="BackingStore.MakeDurable"/> did.</summary>
public enum SyncOutcome
{
    /// <summary>The writes were already durable: an fdatasync another caller started after they completed covered them.</summary>
    Covered,

    /// <summary>This call ran the fdatasync that made them durable.</summary>
    Synced,

    /// <summary>An fdatasync that covered at least one of the writes failed: they may be lost.</summary>
    Failed,
}

/// <summary>
/// The bytes behind one volume: a file or a block device opened through libc so the flags are ours, then read and written
/// with <see cref="RandomAccess"/> (pread/pwrite, no allocation). Writes go to the page cache; durability is group commit:
/// each completed write gets a sequence number, and <see cref="MakeDurable"/> runs one fdatasync for every write completed
/// before it started, so the writes of many requests (and of several threads) share one sync. Measured on ext4 over virtio
/// (the durable cases of benchmarks/aoe-target): one random 8.5 KiB pwrite and its fdatasync take 1.8-2.8 ms, 32 of them and
/// one fdatasync 2-4 ms, so grouping is worth up to 20x; the device's cache flush, not the data, is the cost. Thread-safe:
/// positional I/O has no shared file offset; syncs are serialised.
/// </summary>
public sealed class BackingStore : IDisposable
{
    private readonly SafeFileHandle _handle;
    private readonly Lock _syncLock = new();
    private long _written;
    private long _durable;
    // Writes (_lostAfter, _lostThrough] were covered by a failed fdatasync. Linux reports a writeback error to an fd once and
    // then forgets it, so a later successful sync does not bring them back: they stay reported as failed.
    private long _lostAfter;
    private long _lostThrough;

    private BackingStore(SafeFileHandle handle, string path, long length, bool readOnly, WriteCacheMode mode)
    {
        _handle = handle;
        Path = path;
        Length = length;
        ReadOnly = readOnly;
        WriteCache = mode;
    }

    public string Path { get; }

    /// <summary>Usable size in bytes (rounded down to whole sectors).</summary>
    public long Length { get; }

    public bool ReadOnly { get; }
    public WriteCacheMode WriteCache { get; }

    /// <summary>Sequence number of the last completed write (0 before the first): what a FLUSH issued now must make durable.</summary>
    public long WriteSequence => Volatile.Read(ref _written);

    /// <summary>Opens a block device (sized by BLKGETSIZE64) or a regular file (sized by its length).</summary>
    public static BackingStore Open(string path, bool readOnly, WriteCacheMode mode)
    {
        var fd = Interop.Open(path, (readOnly ? Interop.ORdOnly : Interop.ORdWr) | Interop.OCloexec, 0);
        if (fd < 0)
            ThrowIo($"cannot open {path}", Marshal.GetLastPInvokeError());
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        // BLKGETSIZE64 answers only for block devices (ENOTTY otherwise); a file's size is its length.
        var length = Interop.IoctlGetSize(handle, Interop.BlkGetSize64, out var size) == 0 ? (long)size : RandomAccess.GetLength(handle);
        return new BackingStore(handle, path, length & ~511L, readOnly, mode);
    }

    /// <summary>Reads exactly <paramref name="buffer"/>.Length bytes; a short read past the end fills zeros (sparse files never end early).</summary>
    public void Read(Span<byte> buffer, long offset)
    {
        while (!buffer.IsEmpty)
        {
            var n = RandomAccess.Read(_handle, buffer, offset);
            if (n == 0)
            {
                buffer.Clear();
                return;
            }
            buffer = buffer[n..];
            offset += n;
        }
    }

    /// <summary>
    /// Writes all of <paramref name="data"/> into the page cache and returns the write's sequence number, which
    /// <see cref="MakeDurable"/> takes. Not durable on return.
    /// </summary>
    public long Write(ReadOnlySpan<byte> data, long offset)
    {
        RandomAccess.Write(_handle, data, offset);
        // Numbered on completion: a sync that reads _written after this increment starts after the pwrite returned.
        return Interlocked.Increment(ref _written);
    }

    /// <summary>
    /// Makes writes <paramref name="first"/>..<paramref name="last"/> (sequence numbers from <see cref="Write"/>, or
    /// <see cref="WriteSequence"/> for a FLUSH) durable. Returns at once when a sync that started after them succeeded;
    /// otherwise one caller runs fdatasync for every write completed so far while the others wait for it and then find
    /// themselves covered (group commit across threads). Blocks for the length of at most two syncs.
    /// </summary>
    public SyncOutcome MakeDurable(long first, long last)
    {
        if (ReadOnly)
            return SyncOutcome.Covered;
        if (Volatile.Read(ref _durable) >= last && !IsLost(first, last))
            return SyncOutcome.Covered;
        lock (_syncLock)
        {
            if (IsLost(first, last))
                return SyncOutcome.Failed;
            if (_durable >= last)
                return SyncOutcome.Covered;
            var through = Volatile.Read(ref _written);
            if (Interop.FDataSync(_handle) != 0)
            {
                // fdatasync's range is the whole file, so every write completed before it may be the lost one.
                _lostAfter = _lostThrough == 0 ? _durable : Math.Min(_lostAfter, _durable);
                _lostThrough = through;
                return SyncOutcome.Failed;
            }
            Volatile.Write(ref _durable, through);
            return SyncOutcome.Synced;
        }
    }

    private bool IsLost(long first, long last) => first <= Volatile.Read(ref _lostThrough) && last > Volatile.Read(ref _lostAfter);

    public void Dispose() => _handle.Dispose();

    [DoesNotReturn]
    private static void ThrowIo(string what, int errno) =>
        throw new IOException($"{what}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})", errno);
}
