using XenAoe.Aoe;
using XenAoe.Storage;

namespace XenAoe.Target;

/// <summary>
/// The AoE target protocol engine: turns one request frame into zero or more replies. Transport-free (the NIC loop and the tests
/// feed it frames), allocation-free per frame, and safe to call from several receive threads at once.
/// What it answers and what it ignores follows AoE r11 and the traps in docs/AOE.md: I/O failures are ATA status, never the AoE
/// Error flag (the Linux initiator drops those and retries for 180 s); frames for other targets, responses and masked-out
/// initiators get silence; everything odd is counted in <see cref="Counters"/>.
/// </summary>
public sealed partial class TargetEngine
{
    private readonly TargetOptions _options;
    private readonly Action<VolumeSpec> _persist;
    private readonly ReplyCache _replyCache;
    private readonly object _tableLock = new();
    private volatile VolumeTable _table = VolumeTable.Empty;

    /// <param name="persist">Saves a volume's changed runtime state (config string, MAC mask, reservation); throws to refuse the change.</param>
    public TargetEngine(TargetOptions options, Action<VolumeSpec> persist, TimeProvider? time = null)
    {
        _options = options;
        _persist = persist;
        _replyCache = new ReplyCache(time: time);
    }

    public TargetCounters Counters { get; } = new();

    public IReadOnlyList<ExportedVolume> Volumes => _table.All;

    public ExportedVolume? Find(string name) => Array.Find(_table.All, v => v.Name == name);

    /// <summary>Starts serving <paramref name="spec"/> from <paramref name="store"/>, replacing an export of the same name (the old store is the caller's to close).</summary>
    public ExportedVolume Export(VolumeSpec spec, BackingStore store)
    {
        var volume = new ExportedVolume(spec, store);
        lock (_tableLock)
            _table = _table.With(volume);
        return volume;
    }

    public ExportedVolume? Unexport(string name)
    {
        lock (_tableLock)
        {
            var volume = Find(name);
            if (volume is not null)
                _table = _table.Without(volume);
            return volume;
        }
    }

    /// <summary>Handles one received frame, writing any replies into <paramref name="sink"/>.</summary>
    public void Handle<TSink>(ReadOnlySpan<byte> frame, in LinkInfo link, ref TSink sink) where TSink : IReplySink
    {
        Interlocked.Increment(ref Counters.FramesReceived);
        if (!AoeHeader.TryRead(frame, out var header))
        {
            Interlocked.Increment(ref Counters.Truncated);
            return;
        }
        if (header.IsResponse || !(header.Destination == link.LocalMac || header.Destination.IsBroadcast))
        {
            Interlocked.Increment(ref Counters.NotForUs);
            return;
        }

        var table = _table;
        var broadcast = header.Shelf == AoeProtocol.BroadcastShelf || header.Slot == AoeProtocol.BroadcastSlot;
        if (!broadcast)
        {
            if (table.ByAddress.TryGetValue(ExportedVolume.Address(header.Shelf, header.Slot), out var volume))
                HandleForVolume(frame, header, volume, link, ref sink);
            else
                Interlocked.Increment(ref Counters.NotForUs);
            return;
        }

        // Broadcast discovery: every matching target answers. Other commands to a wildcard address would get one reply per target
        // for a single tag, which no initiator can use, so they are ignored.
        if (header.Command != AoeCommand.QueryConfig)
        {
            Interlocked.Increment(ref Counters.NotForUs);
            return;
        }
        foreach (var volume in table.All)
        {
            if ((header.Shelf == AoeProtocol.BroadcastShelf || header.Shelf == volume.Shelf)
                && (header.Slot == AoeProtocol.BroadcastSlot || header.Slot == volume.Slot))
                HandleForVolume(frame, header, volume, link, ref sink);
        }
    }

    /// <summary>Writes the unsolicited config reply a target broadcasts at start-up so initiators learn it at once.</summary>
    public int WriteAnnouncement(ExportedVolume volume, in LinkInfo link, Span<byte> frame)
    {
        new AoeHeader
        {
            Destination = MacAddress.Broadcast,
            Source = link.LocalMac,
            Version = AoeProtocol.Version,
            Flags = AoeFlags.Response,
            Shelf = volume.Shelf,
            Slot = volume.Slot,
            Command = AoeCommand.QueryConfig,
        }.Write(frame);
        return WriteConfigBody(frame, volume, link, ConfigCommand.Read);
    }

    private void HandleForVolume<TSink>(ReadOnlySpan<byte> frame, in AoeHeader header, ExportedVolume volume, in LinkInfo link, ref TSink sink)
        where TSink : IReplySink
    {
        if (!volume.Admits(header.Source))
        {
            Interlocked.Increment(ref Counters.MaskedOut);
            return;
        }
        if (header.Version != AoeProtocol.Version)
        {
            Interlocked.Increment(ref Counters.BadVersion);
            ReplyError(frame, volume, link, AoeError.UnsupportedVersion, ref sink);
            return;
        }
        switch (header.Command)
        {
            case AoeCommand.Ata:
                HandleAta(frame, header, volume, link, ref sink);
                break;
            case AoeCommand.QueryConfig:
                HandleConfig(frame, volume, link, ref sink);
                break;
            case AoeCommand.MacMaskList:
                HandleMacMask(frame, volume, link, ref sink);
                break;
            case AoeCommand.ReserveRelease:
                HandleReserve(frame, header, volume, link, ref sink);
                break;
            default:
                Interlocked.Increment(ref Counters.UnknownCommand);
                ReplyError(frame, volume, link, AoeError.UnrecognizedCommand, ref sink);
                break;
        }
    }

    /// <summary>An AoE-level error: the header with the Error flag, followed by the request's argument bytes (up to the ATA argument's 12).</summary>
    private void ReplyError<TSink>(ReadOnlySpan<byte> frame, ExportedVolume volume, in LinkInfo link, AoeError error, ref TSink sink)
        where TSink : IReplySink
    {
        var reply = sink.Next();
        AoeHeader.WriteResponse(reply, frame, link.LocalMac, volume.Shelf, volume.Slot, error);
        var argument = frame[AoeProtocol.HeaderLength..Math.Min(frame.Length, AoeProtocol.AtaHeaderLength)];
        argument.CopyTo(reply[AoeProtocol.HeaderLength..]);
        Commit(ref sink, reply, AoeProtocol.HeaderLength + argument.Length);
    }

    private void Commit<TSink>(ref TSink sink, Span<byte> reply, int length) where TSink : IReplySink
    {
        sink.Commit(PadToMinimum(reply, length));
        Interlocked.Increment(ref Counters.RepliesSent);
    }

    /// <summary>Zero-pads a reply to the Ethernet minimum (veth does not pad, and aoetools ignores shorter replies); returns its length.</summary>
    private static int PadToMinimum(Span<byte> reply, int length)
    {
        if (length >= AoeProtocol.MinimumFrameLength)
            return length;
        reply[length..AoeProtocol.MinimumFrameLength].Clear();
        return AoeProtocol.MinimumFrameLength;
    }

    private sealed class VolumeTable(Dictionary<uint, ExportedVolume> byAddress, ExportedVolume[] all)
    {
        public static readonly VolumeTable Empty = new([], []);

        public Dictionary<uint, ExportedVolume> ByAddress { get; } = byAddress;
        public ExportedVolume[] All { get; } = all;

        public VolumeTable With(ExportedVolume volume)
        {
            var all = All.Where(v => v.Name != volume.Name && v.Key != volume.Key).Append(volume).ToArray();
            return new VolumeTable(all.ToDictionary(v => v.Key), all);
        }

        public VolumeTable Without(ExportedVolume volume)
        {
            var all = All.Where(v => v != volume).ToArray();
            return new VolumeTable(all.ToDictionary(v => v.Key), all);
        }
    }
}
