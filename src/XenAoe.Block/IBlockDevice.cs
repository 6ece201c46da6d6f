namespace XenAoe.Block;

/// <summary>
/// A virtual disk as the CPU-server data path sees it: the NBD server exports one, the mirror is one over two legs, and each leg
/// is an AoE target reached through the initiator. Offsets and lengths are bytes and must be multiples of <see cref="SectorSize"/>.
/// Implementations are safe for concurrent calls (NBD clients keep many requests in flight); ordering between overlapping
/// concurrent requests is the caller's business, as on a real disk.
/// </summary>
public interface IBlockDevice : IAsyncDisposable
{
    const int SectorSize = 512;

    /// <summary>Size in bytes.</summary>
    long Size { get; }

    bool ReadOnly { get; }

    ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken ct = default);

    /// <summary>Completes when the data is written; with <paramref name="forceUnitAccess"/>, only once it is durable.</summary>
    ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool forceUnitAccess = false, CancellationToken ct = default);

    /// <summary>Makes every completed write durable.</summary>
    ValueTask FlushAsync(CancellationToken ct = default);

    /// <summary>Writes zeros over a range (the NBD WRITE_ZEROES command); may be cheaper than writing a zero buffer.</summary>
    ValueTask WriteZeroesAsync(long offset, long length, CancellationToken ct = default);

    /// <summary>Says the range is unused (NBD TRIM). Advisory: a device may ignore it, and reads after it return either old data or zeros.</summary>
    ValueTask TrimAsync(long offset, long length, CancellationToken ct = default);
}

public enum BlockError
{
    /// <summary>The device failed the I/O (EIO).</summary>
    Io,

    /// <summary>No space left (ENOSPC), e.g. a sparse backing file on a full disk.</summary>
    NoSpace,

    /// <summary>A malformed request: unaligned, past the end (EINVAL).</summary>
    Invalid,

    /// <summary>A write to a read-only device (EPERM), or refused by a reservation.</summary>
    NotPermitted,
}

/// <summary>A failed block request with a reason a protocol can map (NBD error codes, ATA status).</summary>
public sealed class BlockDeviceException(BlockError error, string message, Exception? inner = null) : IOException(message, inner)
{
    public BlockError Error { get; } = error;
}
