using System.Buffers.Binary;

namespace XenAoe.Aoe;

/// <summary>Builds the 512-byte IDENTIFY DEVICE page (ATA/ATAPI-8 layout, words little-endian).</summary>
public static class IdentifyDevice
{
    public const int Length = 512;

    /// <summary>Largest address LBA28 can reach; a bigger device reports this in words 60-61 and its real size in 100-103.</summary>
    public const ulong MaxLba28Sectors = 0x0FFF_FFFF;

    /// <summary>Fills <paramref name="page"/> for a device of <paramref name="sectors"/> 512-byte sectors.</summary>
    /// <param name="writeBack">Reports the volatile write cache as enabled (word 85 bit 5); write-through volumes report it off.</param>
    public static void Write(Span<byte> page, ulong sectors, string serial, string model, string firmware, bool writeBack)
    {
        page = page[..Length];
        page.Clear();
        // Geometry: the Linux aoe driver reads CHS from words 1/3/6 and 54-56 for HDIO_GETGEO.
        const ushort heads = 255, sectorsPerTrack = 63;
        var cylinders = (ushort)Math.Min(sectors / (heads * sectorsPerTrack), 16383);

        Word(page, 0, 0x0040); // fixed (non-removable) device
        Word(page, 1, cylinders);
        Word(page, 3, heads);
        Word(page, 6, sectorsPerTrack);
        AtaString(page, 10, 20, serial);
        AtaString(page, 23, 8, firmware);
        AtaString(page, 27, 40, model);
        Word(page, 47, 0x8000 | 1); // READ/WRITE MULTIPLE: 1 sector per DRQ block
        Word(page, 49, 1 << 9 | 1 << 8); // LBA and DMA supported
        Word(page, 50, 0x4000);
        Word(page, 53, 1 << 1 | 1 << 0); // words 54-58 and 64-70 valid
        Word(page, 54, cylinders);
        Word(page, 55, heads);
        Word(page, 56, sectorsPerTrack);
        var chs = (uint)cylinders * heads * sectorsPerTrack;
        Word(page, 57, (ushort)chs);
        Word(page, 58, (ushort)(chs >> 16));
        var lba28 = (uint)Math.Min(sectors, MaxLba28Sectors);
        Word(page, 60, (ushort)lba28);
        Word(page, 61, (ushort)(lba28 >> 16));
        Word(page, 80, 0x01F0); // ATA-4 .. ATA-8
        const ushort flush = 1 << 12, flushExt = 1 << 13, lba48 = 1 << 10, writeCache = 1 << 5;
        Word(page, 82, writeCache);
        Word(page, 83, 0x4000 | lba48 | flush | flushExt);
        Word(page, 84, 0x4000);
        Word(page, 85, writeBack ? writeCache : (ushort)0);
        Word(page, 86, lba48 | flush | flushExt);
        Word(page, 87, 0x4000);
        for (var i = 0; i < 4; i++)
            Word(page, 100 + i, (ushort)(sectors >> (16 * i)));
        Word(page, 106, 0x4000); // words 106/117/118 valid, 512-byte logical and physical sectors
    }

    public static ushort ReadWord(ReadOnlySpan<byte> page, int word) => BinaryPrimitives.ReadUInt16LittleEndian(page[(word * 2)..]);

    /// <summary>Device size in sectors as an initiator computes it: words 100-103 when LBA48 is supported, else words 60-61.</summary>
    public static ulong ReadSectors(ReadOnlySpan<byte> page)
    {
        if ((ReadWord(page, 83) & 1 << 10) != 0)
        {
            ulong s = 0;
            for (var i = 3; i >= 0; i--)
                s = s << 16 | ReadWord(page, 100 + i);
            return s;
        }
        return ReadWord(page, 60) | (ulong)ReadWord(page, 61) << 16;
    }

    /// <summary>Reads an ATA string (bytes swapped within each word, padded with spaces).</summary>
    public static string ReadString(ReadOnlySpan<byte> page, int word, int length)
    {
        Span<char> chars = stackalloc char[length];
        for (var i = 0; i < length; i++)
            chars[i] = (char)page[word * 2 + (i ^ 1)];
        return new string(chars).TrimEnd();
    }

    private static void Word(Span<byte> page, int word, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(page[(word * 2)..], value);

    private static void AtaString(Span<byte> page, int word, int length, string text)
    {
        for (var i = 0; i < length; i++)
        {
            var c = i < text.Length && text[i] is >= ' ' and <= '~' ? (byte)text[i] : (byte)' ';
            page[word * 2 + (i ^ 1)] = c;
        }
    }
}
