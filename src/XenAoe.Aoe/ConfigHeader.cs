using System.Buffers.Binary;

namespace XenAoe.Aoe;

/// <summary>The query config argument at bytes 24..31; the config string follows.</summary>
public readonly struct ConfigHeader
{
    public ushort BufferCount { get; init; }
    public ushort FirmwareVersion { get; init; }
    public byte SectorCount { get; init; }
    public byte AoeVersion { get; init; }
    public ConfigCommand Command { get; init; }
    public ushort StringLength { get; init; }

    public static bool TryRead(ReadOnlySpan<byte> frame, out ConfigHeader header)
    {
        if (frame.Length < AoeProtocol.ConfigHeaderLength)
        {
            header = default;
            return false;
        }
        header = new ConfigHeader
        {
            BufferCount = BinaryPrimitives.ReadUInt16BigEndian(frame[24..]),
            FirmwareVersion = BinaryPrimitives.ReadUInt16BigEndian(frame[26..]),
            SectorCount = frame[28],
            AoeVersion = (byte)(frame[29] >> 4),
            Command = (ConfigCommand)(frame[29] & 0xF),
            StringLength = BinaryPrimitives.ReadUInt16BigEndian(frame[30..]),
        };
        return true;
    }

    public void Write(Span<byte> frame)
    {
        BinaryPrimitives.WriteUInt16BigEndian(frame[24..], BufferCount);
        BinaryPrimitives.WriteUInt16BigEndian(frame[26..], FirmwareVersion);
        frame[28] = SectorCount;
        frame[29] = (byte)(AoeVersion << 4 | (byte)Command & 0xF);
        BinaryPrimitives.WriteUInt16BigEndian(frame[30..], StringLength);
    }
}

/// <summary>The MAC mask list argument at bytes 24..27; 8-byte directives follow.</summary>
public readonly struct MacMaskHeader
{
    public const int DirectiveLength = 8;

    public MacMaskCommand Command { get; init; }
    public MacMaskError Error { get; init; }
    public byte DirectiveCount { get; init; }

    public static bool TryRead(ReadOnlySpan<byte> frame, out MacMaskHeader header)
    {
        if (frame.Length < AoeProtocol.MacMaskHeaderLength)
        {
            header = default;
            return false;
        }
        header = new MacMaskHeader { Command = (MacMaskCommand)frame[25], Error = (MacMaskError)frame[26], DirectiveCount = frame[27] };
        return true;
    }

    public void Write(Span<byte> frame)
    {
        frame[24] = 0;
        frame[25] = (byte)Command;
        frame[26] = (byte)Error;
        frame[27] = DirectiveCount;
    }

    public static (MacMaskDirective Directive, MacAddress Mac) ReadDirective(ReadOnlySpan<byte> frame, int index)
    {
        var d = frame.Slice(AoeProtocol.MacMaskHeaderLength + index * DirectiveLength, DirectiveLength);
        return ((MacMaskDirective)d[1], MacAddress.Read(d[2..]));
    }

    public static void WriteDirective(Span<byte> frame, int index, MacMaskDirective directive, MacAddress mac)
    {
        var d = frame.Slice(AoeProtocol.MacMaskHeaderLength + index * DirectiveLength, DirectiveLength);
        d[0] = 0;
        d[1] = (byte)directive;
        mac.Write(d[2..]);
    }
}

/// <summary>The reserve/release argument at bytes 24..25; 6-byte MACs follow.</summary>
public readonly struct ReserveHeader
{
    public ReserveCommand Command { get; init; }
    public byte MacCount { get; init; }

    public static bool TryRead(ReadOnlySpan<byte> frame, out ReserveHeader header)
    {
        if (frame.Length < AoeProtocol.ReserveHeaderLength)
        {
            header = default;
            return false;
        }
        header = new ReserveHeader { Command = (ReserveCommand)frame[24], MacCount = frame[25] };
        return true;
    }

    public void Write(Span<byte> frame)
    {
        frame[24] = (byte)Command;
        frame[25] = MacCount;
    }

    public static MacAddress ReadMac(ReadOnlySpan<byte> frame, int index) =>
        MacAddress.Read(frame.Slice(AoeProtocol.ReserveHeaderLength + index * MacAddress.Length, MacAddress.Length));
}
