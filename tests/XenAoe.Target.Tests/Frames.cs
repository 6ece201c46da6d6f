using XenAoe.Aoe;

namespace XenAoe.Target.Tests;

/// <summary>Builds request frames the way initiators do, and collects replies.</summary>
internal static class Frames
{
    public static readonly MacAddress TargetMac = MacAddress.Parse("02:00:00:00:00:01");
    public static readonly MacAddress HostA = MacAddress.Parse("02:00:00:00:00:0a");
    public static readonly MacAddress HostB = MacAddress.Parse("02:00:00:00:00:0b");
    public static readonly LinkInfo Jumbo = new(TargetMac, 9000);

    public static byte[] Header(AoeCommand command, ushort shelf, byte slot, int length, uint tag = 0x8000_0001, MacAddress? source = null,
        MacAddress? destination = null, byte version = AoeProtocol.Version)
    {
        var frame = new byte[Math.Max(length, AoeProtocol.HeaderLength)];
        new AoeHeader
        {
            Destination = destination ?? TargetMac,
            Source = source ?? HostA,
            Version = version,
            Shelf = shelf,
            Slot = slot,
            Command = command,
            Tag = tag,
        }.Write(frame);
        return frame;
    }

    public static byte[] Ata(byte command, ulong lba, byte count, ushort shelf = 1, byte slot = 0, ReadOnlySpan<byte> data = default,
        uint tag = 0x8000_0001, MacAddress? source = null, bool extended = true)
    {
        var frame = Header(AoeCommand.Ata, shelf, slot, AoeProtocol.AtaHeaderLength + data.Length, tag, source);
        new AtaHeader
        {
            Flags = (extended ? AtaFlags.Extended : AtaFlags.None) | (data.IsEmpty ? AtaFlags.None : AtaFlags.Write),
            SectorCount = count,
            CommandOrStatus = command,
            Lba = lba,
        }.Write(frame);
        data.CopyTo(frame.AsSpan(AoeProtocol.AtaHeaderLength));
        return frame;
    }

    public static byte[] Config(ConfigCommand command, string value = "", ushort shelf = 1, byte slot = 0, MacAddress? source = null)
    {
        var frame = Header(AoeCommand.QueryConfig, shelf, slot, AoeProtocol.ConfigHeaderLength + value.Length, source: source);
        new ConfigHeader { AoeVersion = AoeProtocol.Version, Command = command, StringLength = (ushort)value.Length }.Write(frame);
        System.Text.Encoding.ASCII.GetBytes(value).CopyTo(frame, AoeProtocol.ConfigHeaderLength);
        return frame;
    }

    public static byte[] Reserve(ReserveCommand command, MacAddress source, params MacAddress[] holders)
    {
        var frame = Header(AoeCommand.ReserveRelease, 1, 0, AoeProtocol.ReserveHeaderLength + holders.Length * 6, source: source);
        new ReserveHeader { Command = command, MacCount = (byte)holders.Length }.Write(frame);
        for (var i = 0; i < holders.Length; i++)
            holders[i].Write(frame.AsSpan(AoeProtocol.ReserveHeaderLength + i * 6));
        return frame;
    }

    public static byte[] MacMask(MacMaskCommand command, MacAddress source, params (MacMaskDirective, MacAddress)[] directives)
    {
        var frame = Header(AoeCommand.MacMaskList, 1, 0, AoeProtocol.MacMaskHeaderLength + directives.Length * 8, source: source);
        new MacMaskHeader { Command = command, DirectiveCount = (byte)directives.Length }.Write(frame);
        for (var i = 0; i < directives.Length; i++)
            MacMaskHeader.WriteDirective(frame, i, directives[i].Item1, directives[i].Item2);
        return frame;
    }
}

/// <summary>Collects replies as separate arrays; a reply that waits for a sync is synced at once (no grouping) and counted.</summary>
internal struct ListSink(int frameSize) : IReplySink
{
    private byte[]? _pending;

    public List<byte[]> Replies { get; } = [];

    public Span<byte> Next()
    {
        _pending = new byte[frameSize];
        Array.Fill(_pending, (byte)0xCC); // garbage, so missing padding shows
        return _pending;
    }

    /// <summary>What each reply waited for; null for replies that leave at once.</summary>
    public List<PendingSync?> Syncs { get; } = [];

    public void Commit(int length)
    {
        Replies.Add(_pending.AsSpan(0, length).ToArray());
        Syncs.Add(null);
    }

    public void CommitAfterSync(int length, in PendingSync sync)
    {
        sync.Complete(_pending);
        Replies.Add(_pending.AsSpan(0, length).ToArray());
        Syncs.Add(sync);
    }
}
