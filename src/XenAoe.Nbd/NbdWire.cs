using System.Buffers.Binary;

namespace XenAoe.Nbd;

/// <summary>An option header the client sends during the handshake.</summary>
internal readonly record struct NbdOptionHeader(ulong Magic, uint Option, uint Length)
{
    /// <summary>Reads the 16-byte header; false when fewer bytes have arrived (never throws for "need more data").</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out NbdOptionHeader header)
    {
        if (source.Length < NbdProtocol.OptionHeaderLength)
        {
            header = default;
            return false;
        }
        header = new NbdOptionHeader(
            BinaryPrimitives.ReadUInt64BigEndian(source),
            BinaryPrimitives.ReadUInt32BigEndian(source[8..]),
            BinaryPrimitives.ReadUInt32BigEndian(source[12..]));
        return true;
    }
}

/// <summary>A transmission-phase request header.</summary>
internal readonly record struct NbdRequestHeader(uint Magic, ushort Flags, ushort Type, ulong Cookie, ulong Offset, uint Length)
{
    /// <summary>Reads the 28-byte header; false when fewer bytes have arrived.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out NbdRequestHeader header)
    {
        if (source.Length < NbdProtocol.RequestLength)
        {
            header = default;
            return false;
        }
        header = new NbdRequestHeader(
            BinaryPrimitives.ReadUInt32BigEndian(source),
            BinaryPrimitives.ReadUInt16BigEndian(source[4..]),
            BinaryPrimitives.ReadUInt16BigEndian(source[6..]),
            BinaryPrimitives.ReadUInt64BigEndian(source[8..]),
            BinaryPrimitives.ReadUInt64BigEndian(source[16..]),
            BinaryPrimitives.ReadUInt32BigEndian(source[24..]));
        return true;
    }

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, Magic);
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], Flags);
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], Type);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], Cookie);
        BinaryPrimitives.WriteUInt64BigEndian(destination[16..], Offset);
        BinaryPrimitives.WriteUInt32BigEndian(destination[24..], Length);
    }
}

/// <summary>The data of NBD_OPT_INFO and NBD_OPT_GO: an export name and a list of 16-bit information requests.</summary>
internal readonly ref struct NbdGoRequest
{
    public ReadOnlySpan<byte> Name { get; init; }
    public ReadOnlySpan<byte> InfoRequests { get; init; }

    public int InfoRequestCount => InfoRequests.Length / 2;

    public ushort InfoRequest(int index) => BinaryPrimitives.ReadUInt16BigEndian(InfoRequests[(index * 2)..]);

    /// <summary>
    /// Parses the whole option data; false when the claimed name length or request count does not match the data length exactly
    /// (the lengths are checked before use, so no claimed length reaches past <paramref name="data"/>).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> data, out NbdGoRequest request)
    {
        request = default;
        if (data.Length < 6)
            return false;
        var nameLength = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (nameLength > (uint)(data.Length - 6) || nameLength > NbdProtocol.MaxStringLength)
            return false;
        var rest = data[(4 + (int)nameLength)..];
        var count = BinaryPrimitives.ReadUInt16BigEndian(rest);
        if (rest.Length - 2 != count * 2)
            return false;
        request = new NbdGoRequest { Name = data.Slice(4, (int)nameLength), InfoRequests = rest[2..] };
        return true;
    }
}

/// <summary>Writers for the fixed-size server frames; each fills exactly its length at the start of the span.</summary>
internal static class NbdWriter
{
    public static void WriteGreeting(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, NbdProtocol.InitMagic);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], NbdProtocol.OptionMagic);
        BinaryPrimitives.WriteUInt16BigEndian(destination[16..], NbdProtocol.FlagFixedNewstyle | NbdProtocol.FlagNoZeroes);
    }

    public static void WriteOptionReplyHeader(Span<byte> destination, uint option, uint type, int length)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, NbdProtocol.OptionReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(destination[8..], option);
        BinaryPrimitives.WriteUInt32BigEndian(destination[12..], type);
        BinaryPrimitives.WriteUInt32BigEndian(destination[16..], (uint)length);
    }

    public static void WriteSimpleReply(Span<byte> destination, uint error, ulong cookie)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, NbdProtocol.SimpleReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], error);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], cookie);
    }

    public static void WriteStructuredHeader(Span<byte> destination, ushort flags, ushort type, ulong cookie, int length)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, NbdProtocol.StructuredReplyMagic);
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], flags);
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], type);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], cookie);
        BinaryPrimitives.WriteUInt32BigEndian(destination[16..], (uint)length);
    }
}
