namespace XenAoe.Aoe;

[Flags]
public enum AtaFlags : byte
{
    None = 0,
    Write = 0x01,
    Async = 0x02,
    Device = 0x10,
    Extended = 0x40,
}

/// <summary>ATA command register values we act on; everything else is answered with ABRT.</summary>
public static class AtaCommands
{
    public const byte ReadSectors = 0x20;
    public const byte ReadSectorsExt = 0x24;
    public const byte WriteSectors = 0x30;
    public const byte WriteSectorsExt = 0x34;
    public const byte CheckPowerMode = 0xE5;
    public const byte FlushCache = 0xE7;
    public const byte FlushCacheExt = 0xEA;
    public const byte IdentifyDevice = 0xEC;
}

/// <summary>ATA status and error register bits as reported in responses.</summary>
public static class AtaStatus
{
    public const byte Error = 0x01;
    public const byte DataRequest = 0x08;
    public const byte DeviceFault = 0x20;
    public const byte Ready = 0x40;
    public const byte Busy = 0x80;

    /// <summary>Error register: command aborted (unsupported command or bad argument).</summary>
    public const byte Abort = 0x04;

    /// <summary>Error register: ID not found (address past the end of the medium).</summary>
    public const byte IdNotFound = 0x10;

    /// <summary>Error register: uncorrectable data error (the backing store failed the I/O).</summary>
    public const byte Uncorrectable = 0x40;
}

/// <summary>The 12-byte ATA argument at bytes 24..35.</summary>
public readonly struct AtaHeader
{
    public AtaFlags Flags { get; init; }
    public byte ErrorOrFeature { get; init; }
    public byte SectorCount { get; init; }
    public byte CommandOrStatus { get; init; }

    /// <summary>Logical block address: 48 bits with <see cref="AtaFlags.Extended"/>, else 28 bits (device bits of lba3 masked off).</summary>
    public ulong Lba { get; init; }

    public bool IsWrite => (Flags & AtaFlags.Write) != 0;
    public bool IsExtended => (Flags & AtaFlags.Extended) != 0;

    /// <summary>Reads the ATA argument; false when the frame is too short to hold it.</summary>
    public static bool TryRead(ReadOnlySpan<byte> frame, out AtaHeader header)
    {
        if (frame.Length < AoeProtocol.AtaHeaderLength)
        {
            header = default;
            return false;
        }
        var flags = (AtaFlags)frame[24];
        var lba = (flags & AtaFlags.Extended) != 0
            ? frame[28] | (ulong)frame[29] << 8 | (ulong)frame[30] << 16 | (ulong)frame[31] << 24 | (ulong)frame[32] << 32 | (ulong)frame[33] << 40
            : frame[28] | (ulong)frame[29] << 8 | (ulong)frame[30] << 16 | (ulong)(frame[31] & 0x0F) << 24;
        header = new AtaHeader
        {
            Flags = flags,
            ErrorOrFeature = frame[25],
            SectorCount = frame[26],
            CommandOrStatus = frame[27],
            Lba = lba,
        };
        return true;
    }

    /// <summary>Writes the argument into bytes 24..35 (LBA little-endian, as the wire format has it).</summary>
    public void Write(Span<byte> frame)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(frame.Length, AoeProtocol.AtaHeaderLength);
        frame[24] = (byte)Flags;
        frame[25] = ErrorOrFeature;
        frame[26] = SectorCount;
        frame[27] = CommandOrStatus;
        for (var i = 0; i < 6; i++)
            frame[28 + i] = (byte)(Lba >> (8 * i));
        if (!IsExtended)
            frame[31] = (byte)(0xE0 | (Lba >> 24 & 0x0F));
        frame[34] = 0;
        frame[35] = 0;
    }
}
