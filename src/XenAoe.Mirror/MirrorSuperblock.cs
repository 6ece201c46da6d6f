using System.Buffers.Binary;
using System.Numerics;

namespace XenAoe.Mirror;

/// <summary>
/// The metadata at the start of every leg: who the leg is, which mirror it belongs to, and how current it is.
/// <para>
/// Currency is a lineage, not just a counter: <see cref="Epoch"/> is a random id of the period in which the legs were last in
/// step, <see cref="ParentEpoch"/> the epoch before it. When a leg fails, the survivor starts a new epoch whose parent is the old one
/// and bumps <see cref="Events"/>. On assembly, a leg whose epoch is the other's parent is stale (resync towards it); equal epochs
/// compare <see cref="Events"/>; anything else means the legs diverged apart from each other (split brain) and assembly refuses.
/// </para>
/// Layout (little-endian, one 4 KiB block, CRC32C over all but the last 4 bytes): magic, version, mirror id, leg id, leg index,
/// region size, data offset, data size, events, epoch, parent epoch, flags, crc.
/// </summary>
public sealed record MirrorSuperblock
{
    public const int Length = 4096;
    public const uint CurrentVersion = 1;
    private static ReadOnlySpan<byte> Magic => "XAOEMIRR"u8;

    public required Guid MirrorId { get; init; }
    public required Guid LegId { get; init; }
    public required int LegIndex { get; init; }

    /// <summary>Bytes of data one bitmap bit covers.</summary>
    public required int RegionSize { get; init; }

    /// <summary>Where the mirrored data starts on the leg (after this block and the bitmap).</summary>
    public required long DataOffset { get; init; }

    /// <summary>Size of the mirrored data, the device the VM sees.</summary>
    public required long DataSize { get; init; }

    public required ulong Events { get; init; }
    public required ulong Epoch { get; init; }
    public ulong ParentEpoch { get; init; }

    /// <summary>Set when the mirror was stopped cleanly: no write can be half-applied.</summary>
    public bool Clean { get; init; }

    /// <summary>Set on a leg that was being filled (new or resyncing) and is not yet a full copy.</summary>
    public bool Incomplete { get; init; }

    public long Regions => (DataSize + RegionSize - 1) / RegionSize;

    public static long BitmapBytes(long regions) => ((regions + 7) / 8 + Length - 1) / Length * Length;

    public void Write(Span<byte> block)
    {
        block = block[..Length];
        block.Clear();
        Magic.CopyTo(block);
        BinaryPrimitives.WriteUInt32LittleEndian(block[8..], CurrentVersion);
        MirrorId.TryWriteBytes(block[16..]);
        LegId.TryWriteBytes(block[32..]);
        BinaryPrimitives.WriteInt32LittleEndian(block[48..], LegIndex);
        BinaryPrimitives.WriteInt32LittleEndian(block[52..], RegionSize);
        BinaryPrimitives.WriteInt64LittleEndian(block[56..], DataOffset);
        BinaryPrimitives.WriteInt64LittleEndian(block[64..], DataSize);
        BinaryPrimitives.WriteUInt64LittleEndian(block[72..], Events);
        BinaryPrimitives.WriteUInt64LittleEndian(block[80..], Epoch);
        BinaryPrimitives.WriteUInt64LittleEndian(block[88..], ParentEpoch);
        BinaryPrimitives.WriteUInt32LittleEndian(block[96..], (Clean ? 1u : 0) | (Incomplete ? 2u : 0));
        BinaryPrimitives.WriteUInt32LittleEndian(block[(Length - 4)..], Checksum(block[..(Length - 4)]));
    }

    /// <summary>Reads a superblock; null with a reason when the block is not one (blank, foreign, corrupt, newer version).</summary>
    public static MirrorSuperblock? TryRead(ReadOnlySpan<byte> block, out string? problem)
    {
        problem = null;
        if (block.Length < Length || !block.StartsWith(Magic))
        {
            problem = "no XenAoE mirror metadata (blank or foreign data)";
            return null;
        }
        if (BinaryPrimitives.ReadUInt32LittleEndian(block[(Length - 4)..]) != Checksum(block[..(Length - 4)]))
        {
            problem = "mirror metadata checksum mismatch (corrupt)";
            return null;
        }
        var version = BinaryPrimitives.ReadUInt32LittleEndian(block[8..]);
        if (version != CurrentVersion)
        {
            problem = $"mirror metadata version {version} is not supported (this build reads {CurrentVersion})";
            return null;
        }
        var flags = BinaryPrimitives.ReadUInt32LittleEndian(block[96..]);
        var sb = new MirrorSuperblock
        {
            MirrorId = new Guid(block.Slice(16, 16)),
            LegId = new Guid(block.Slice(32, 16)),
            LegIndex = BinaryPrimitives.ReadInt32LittleEndian(block[48..]),
            RegionSize = BinaryPrimitives.ReadInt32LittleEndian(block[52..]),
            DataOffset = BinaryPrimitives.ReadInt64LittleEndian(block[56..]),
            DataSize = BinaryPrimitives.ReadInt64LittleEndian(block[64..]),
            Events = BinaryPrimitives.ReadUInt64LittleEndian(block[72..]),
            Epoch = BinaryPrimitives.ReadUInt64LittleEndian(block[80..]),
            ParentEpoch = BinaryPrimitives.ReadUInt64LittleEndian(block[88..]),
            Clean = (flags & 1) != 0,
            Incomplete = (flags & 2) != 0,
        };
        if (sb.RegionSize < 4096 || !BitOperations.IsPow2(sb.RegionSize) || sb.DataSize <= 0 || sb.LegIndex is not (0 or 1)
            || sb.DataOffset < Length + BitmapBytes(sb.Regions))
        {
            problem = "mirror metadata has impossible geometry (corrupt)";
            return null;
        }
        return sb;
    }

    private static uint Checksum(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFF_FFFFu;
        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }
        foreach (var b in data)
            crc = BitOperations.Crc32C(crc, b);
        return ~crc;
    }
}
