using System.Buffers.Binary;
using XenAoe.Aoe;

namespace XenAoe.Initiator;

/// <summary>Builds request frames and reads reply bodies. Every length a reply claims is checked against the frame.</summary>
internal static class Frames
{
    public static void WriteHeader(Span<byte> frame, MacAddress destination, MacAddress source, ushort shelf, byte slot, AoeCommand command, uint tag) =>
        new AoeHeader
        {
            Destination = destination,
            Source = source,
            Version = AoeProtocol.Version,
            Shelf = shelf,
            Slot = slot,
            Command = command,
            Tag = tag,
        }.Write(frame);

    /// <summary>Rewrites the MACs of a stored frame for the path it is sent on.</summary>
    public static void SetAddresses(Span<byte> frame, MacAddress destination, MacAddress source)
    {
        destination.Write(frame);
        source.Write(frame[6..]);
    }

    public static void SetTag(Span<byte> frame, uint tag) => BinaryPrimitives.WriteUInt32BigEndian(frame[20..], tag);

    /// <summary>An LBA48 READ/WRITE SECTORS EXT or FLUSH CACHE EXT frame; returns its length (data included, unpadded).</summary>
    public static int WriteAta(Span<byte> frame, MacAddress destination, MacAddress source, AoeAddress target, uint tag,
        byte command, bool write, ulong lba, int count, ReadOnlySpan<byte> data)
    {
        WriteHeader(frame, destination, source, target.Shelf, target.Slot, AoeCommand.Ata, tag);
        new AtaHeader
        {
            Flags = AtaFlags.Extended | (write ? AtaFlags.Write : AtaFlags.None),
            SectorCount = (byte)count,
            CommandOrStatus = command,
            Lba = lba,
        }.Write(frame);
        data.CopyTo(frame[AoeProtocol.AtaHeaderLength..]);
        return AoeProtocol.AtaHeaderLength + data.Length;
    }

    /// <summary>IDENTIFY DEVICE: LBA28 form, one sector, as the Linux driver and aoetools send it.</summary>
    public static int WriteIdentify(Span<byte> frame, MacAddress destination, MacAddress source, AoeAddress target, uint tag)
    {
        WriteHeader(frame, destination, source, target.Shelf, target.Slot, AoeCommand.Ata, tag);
        new AtaHeader { SectorCount = 1, CommandOrStatus = AtaCommands.IdentifyDevice }.Write(frame);
        return AoeProtocol.AtaHeaderLength;
    }

    public static int WriteConfig(Span<byte> frame, MacAddress destination, MacAddress source, ushort shelf, byte slot, uint tag,
        ConfigCommand command, ReadOnlySpan<byte> value)
    {
        WriteHeader(frame, destination, source, shelf, slot, AoeCommand.QueryConfig, tag);
        new ConfigHeader { AoeVersion = AoeProtocol.Version, Command = command, StringLength = (ushort)value.Length }.Write(frame);
        value.CopyTo(frame[AoeProtocol.ConfigHeaderLength..]);
        return AoeProtocol.ConfigHeaderLength + value.Length;
    }

    public static int WriteMacMask(Span<byte> frame, MacAddress destination, MacAddress source, AoeAddress target, uint tag,
        MacMaskCommand command, IReadOnlyList<AoeMacMaskEdit> edits)
    {
        WriteHeader(frame, destination, source, target.Shelf, target.Slot, AoeCommand.MacMaskList, tag);
        new MacMaskHeader { Command = command, DirectiveCount = (byte)edits.Count }.Write(frame);
        for (var i = 0; i < edits.Count; i++)
            MacMaskHeader.WriteDirective(frame, i, edits[i].Directive, edits[i].Mac);
        return AoeProtocol.MacMaskHeaderLength + edits.Count * MacMaskHeader.DirectiveLength;
    }

    public static int WriteReserve(Span<byte> frame, MacAddress destination, MacAddress source, AoeAddress target, uint tag,
        ReserveCommand command, IReadOnlyList<MacAddress> macs)
    {
        WriteHeader(frame, destination, source, target.Shelf, target.Slot, AoeCommand.ReserveRelease, tag);
        new ReserveHeader { Command = command, MacCount = (byte)macs.Count }.Write(frame);
        for (var i = 0; i < macs.Count; i++)
            macs[i].Write(frame[(AoeProtocol.ReserveHeaderLength + i * MacAddress.Length)..]);
        return AoeProtocol.ReserveHeaderLength + macs.Count * MacAddress.Length;
    }

    /// <summary>The config string of a config reply; false when the claimed length runs past the frame.</summary>
    public static bool TryReadConfigString(ReadOnlySpan<byte> frame, out ConfigHeader header, out byte[] value)
    {
        value = [];
        if (!ConfigHeader.TryRead(frame, out header)
            || header.StringLength > AoeProtocol.MaxConfigStringLength
            || AoeProtocol.ConfigHeaderLength + header.StringLength > frame.Length)
            return false;
        value = frame.Slice(AoeProtocol.ConfigHeaderLength, header.StringLength).ToArray();
        return true;
    }

    public static bool TryReadMacMask(ReadOnlySpan<byte> frame, out MacMaskHeader header, out MacAddress[] macs)
    {
        macs = [];
        if (!MacMaskHeader.TryRead(frame, out header)
            || AoeProtocol.MacMaskHeaderLength + header.DirectiveCount * MacMaskHeader.DirectiveLength > frame.Length)
            return false;
        macs = new MacAddress[header.DirectiveCount];
        for (var i = 0; i < macs.Length; i++)
            macs[i] = MacMaskHeader.ReadDirective(frame, i).Mac;
        return true;
    }

    public static bool TryReadReservation(ReadOnlySpan<byte> frame, out ReserveHeader header, out MacAddress[] macs)
    {
        macs = [];
        if (!ReserveHeader.TryRead(frame, out header)
            || AoeProtocol.ReserveHeaderLength + header.MacCount * MacAddress.Length > frame.Length)
            return false;
        macs = new MacAddress[header.MacCount];
        for (var i = 0; i < macs.Length; i++)
            macs[i] = ReserveHeader.ReadMac(frame, i);
        return true;
    }
}
