using System.Buffers.Binary;

namespace XenAoe.Aoe;

/// <summary>The Ethernet and AoE common header (bytes 0..23 of a frame).</summary>
public readonly struct AoeHeader
{
    public MacAddress Destination { get; init; }
    public MacAddress Source { get; init; }
    public byte Version { get; init; }
    public AoeFlags Flags { get; init; }
    public AoeError Error { get; init; }
    public ushort Shelf { get; init; }
    public byte Slot { get; init; }
    public AoeCommand Command { get; init; }
    public uint Tag { get; init; }

    public bool IsResponse => (Flags & AoeFlags.Response) != 0;

    /// <summary>Reads the header; false when the frame is shorter than a header or is not AoE.</summary>
    public static bool TryRead(ReadOnlySpan<byte> frame, out AoeHeader header)
    {
        if (frame.Length < AoeProtocol.HeaderLength || BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != AoeProtocol.EtherType)
        {
            header = default;
            return false;
        }
        header = new AoeHeader
        {
            Destination = MacAddress.Read(frame),
            Source = MacAddress.Read(frame[6..]),
            Version = (byte)(frame[14] >> 4),
            Flags = (AoeFlags)(frame[14] & 0xF),
            Error = (AoeError)frame[15],
            Shelf = BinaryPrimitives.ReadUInt16BigEndian(frame[16..]),
            Slot = frame[18],
            Command = (AoeCommand)frame[19],
            Tag = BinaryPrimitives.ReadUInt32BigEndian(frame[20..]),
        };
        return true;
    }

    /// <summary>Writes the header into the first 24 bytes of <paramref name="frame"/>.</summary>
    public void Write(Span<byte> frame)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(frame.Length, AoeProtocol.HeaderLength);
        Destination.Write(frame);
        Source.Write(frame[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], AoeProtocol.EtherType);
        frame[14] = (byte)(Version << 4 | (byte)Flags);
        frame[15] = (byte)Error;
        BinaryPrimitives.WriteUInt16BigEndian(frame[16..], Shelf);
        frame[18] = Slot;
        frame[19] = (byte)Command;
        BinaryPrimitives.WriteUInt32BigEndian(frame[20..], Tag);
    }

    /// <summary>
    /// Turns a request header in place into the header of its response: addresses swapped (our <paramref name="localMac"/> as source),
    /// the Response flag set, the Error flag and code set when <paramref name="error"/> is not None, and shelf.slot set to the answering target.
    /// </summary>
    public static void WriteResponse(Span<byte> frame, ReadOnlySpan<byte> request, MacAddress localMac, ushort shelf, byte slot, AoeError error)
    {
        request[6..12].CopyTo(frame);
        localMac.Write(frame[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], AoeProtocol.EtherType);
        frame[14] = (byte)(AoeProtocol.Version << 4 | (byte)AoeFlags.Response | (error != AoeError.None ? (byte)AoeFlags.Error : 0));
        frame[15] = (byte)error;
        BinaryPrimitives.WriteUInt16BigEndian(frame[16..], shelf);
        frame[18] = slot;
        frame[19] = request[19];
        request[20..24].CopyTo(frame[20..]);
    }
}
