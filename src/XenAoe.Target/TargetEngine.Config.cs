using XenAoe.Aoe;
using XenAoe.Storage;

namespace XenAoe.Target;

public sealed partial class TargetEngine
{
    /// <summary>Longest MAC mask or reservation list; 64 entries keep every reply within a 1500-byte MTU.</summary>
    public const int MaxMacList = 64;

    private void HandleConfig<TSink>(ReadOnlySpan<byte> frame, ExportedVolume volume, in LinkInfo link, ref TSink sink) where TSink : IReplySink
    {
        if (!ConfigHeader.TryRead(frame, out var request)
            || request.StringLength > AoeProtocol.MaxConfigStringLength
            || AoeProtocol.ConfigHeaderLength + request.StringLength > frame.Length)
        {
            Interlocked.Increment(ref Counters.BadArgument);
            ReplyError(frame, volume, link, AoeError.BadArgument, ref sink);
            return;
        }
        var given = frame.Slice(AoeProtocol.ConfigHeaderLength, request.StringLength);
        switch (request.Command)
        {
            case ConfigCommand.Read:
                break;
            case ConfigCommand.TestExact when !given.SequenceEqual(volume.ConfigString):
            case ConfigCommand.TestPrefix when !volume.ConfigString.AsSpan().StartsWith(given):
                return; // a test that does not match gets no reply
            case ConfigCommand.TestExact or ConfigCommand.TestPrefix:
                break;
            case ConfigCommand.SetIfEmpty or ConfigCommand.ForceSet:
                var error = SetConfig(volume, given, request.Command == ConfigCommand.ForceSet);
                if (error != AoeError.None)
                {
                    ReplyError(frame, volume, link, error, ref sink);
                    return;
                }
                break;
            default:
                Interlocked.Increment(ref Counters.BadArgument);
                ReplyError(frame, volume, link, AoeError.BadArgument, ref sink);
                return;
        }
        var reply = sink.Next();
        AoeHeader.WriteResponse(reply, frame, link.LocalMac, volume.Shelf, volume.Slot, AoeError.None);
        Commit(ref sink, reply, WriteConfigBody(reply, volume, link, request.Command));
    }

    private AoeError SetConfig(ExportedVolume volume, ReadOnlySpan<byte> value, bool force)
    {
        lock (volume.Sync)
        {
            if (!force && volume.ConfigString.Length != 0 && !value.SequenceEqual(volume.ConfigString))
                return AoeError.ConfigStringPresent;
            return TryUpdate(volume, config: value.ToArray());
        }
    }

    private int WriteConfigBody(Span<byte> reply, ExportedVolume volume, in LinkInfo link, ConfigCommand command)
    {
        var config = volume.ConfigString;
        new ConfigHeader
        {
            BufferCount = _options.BufferCount,
            FirmwareVersion = _options.FirmwareVersion,
            SectorCount = (byte)link.MaxSectors,
            AoeVersion = AoeProtocol.Version,
            Command = command,
            StringLength = (ushort)config.Length,
        }.Write(reply);
        config.CopyTo(reply[AoeProtocol.ConfigHeaderLength..]);
        return AoeProtocol.ConfigHeaderLength + config.Length;
    }

    private void HandleMacMask<TSink>(ReadOnlySpan<byte> frame, ExportedVolume volume, in LinkInfo link, ref TSink sink) where TSink : IReplySink
    {
        if (!MacMaskHeader.TryRead(frame, out var request)
            || AoeProtocol.MacMaskHeaderLength + request.DirectiveCount * MacMaskHeader.DirectiveLength > frame.Length
            || request.Command is not (MacMaskCommand.Read or MacMaskCommand.Edit))
        {
            Interlocked.Increment(ref Counters.BadArgument);
            ReplyError(frame, volume, link, AoeError.BadArgument, ref sink);
            return;
        }
        var maskError = MacMaskError.None;
        if (request.Command == MacMaskCommand.Edit)
        {
            lock (volume.Sync)
            {
                var list = volume.Mask.ToList();
                for (var i = 0; i < request.DirectiveCount && maskError == MacMaskError.None; i++)
                {
                    var (directive, mac) = MacMaskHeader.ReadDirective(frame, i);
                    switch (directive)
                    {
                        case MacMaskDirective.None:
                            break;
                        case MacMaskDirective.Add when list.Contains(mac):
                            break;
                        case MacMaskDirective.Add when list.Count >= MaxMacList:
                            maskError = MacMaskError.ListFull;
                            break;
                        case MacMaskDirective.Add:
                            list.Add(mac);
                            break;
                        case MacMaskDirective.Delete:
                            list.Remove(mac);
                            break;
                        default:
                            maskError = MacMaskError.BadDirective;
                            break;
                    }
                }
                // Directives before a failing one stay applied, as the list the reply carries shows.
                var error = TryUpdate(volume, mask: [.. list]);
                if (error != AoeError.None)
                {
                    ReplyError(frame, volume, link, error, ref sink);
                    return;
                }
            }
        }
        var mask = volume.Mask;
        var reply = sink.Next();
        AoeHeader.WriteResponse(reply, frame, link.LocalMac, volume.Shelf, volume.Slot, AoeError.None);
        new MacMaskHeader { Command = request.Command, Error = maskError, DirectiveCount = (byte)mask.Length }.Write(reply);
        for (var i = 0; i < mask.Length; i++)
            MacMaskHeader.WriteDirective(reply, i, MacMaskDirective.None, mask[i]);
        Commit(ref sink, reply, AoeProtocol.MacMaskHeaderLength + mask.Length * MacMaskHeader.DirectiveLength);
    }

    private void HandleReserve<TSink>(ReadOnlySpan<byte> frame, in AoeHeader header, ExportedVolume volume, in LinkInfo link, ref TSink sink)
        where TSink : IReplySink
    {
        if (!ReserveHeader.TryRead(frame, out var request)
            || AoeProtocol.ReserveHeaderLength + request.MacCount * MacAddress.Length > frame.Length
            || request.MacCount > MaxMacList
            || request.Command is not (ReserveCommand.Read or ReserveCommand.Set or ReserveCommand.ForceSet))
        {
            Interlocked.Increment(ref Counters.BadArgument);
            ReplyError(frame, volume, link, AoeError.BadArgument, ref sink);
            return;
        }
        if (request.Command != ReserveCommand.Read)
        {
            lock (volume.Sync)
            {
                var error = AoeError.None;
                if (request.Command == ReserveCommand.Set && volume.IsReservedAgainst(header.Source))
                {
                    Interlocked.Increment(ref Counters.Reserved);
                    error = AoeError.TargetReserved;
                }
                else
                {
                    var holders = new MacAddress[request.MacCount];
                    for (var i = 0; i < holders.Length; i++)
                        holders[i] = ReserveHeader.ReadMac(frame, i);
                    error = TryUpdate(volume, reservation: [.. holders.Distinct()]);
                }
                if (error != AoeError.None)
                {
                    ReplyError(frame, volume, link, error, ref sink);
                    return;
                }
            }
        }
        var reservation = volume.Reservation;
        var reply = sink.Next();
        AoeHeader.WriteResponse(reply, frame, link.LocalMac, volume.Shelf, volume.Slot, AoeError.None);
        new ReserveHeader { Command = request.Command, MacCount = (byte)reservation.Length }.Write(reply);
        for (var i = 0; i < reservation.Length; i++)
            reservation[i].Write(reply[(AoeProtocol.ReserveHeaderLength + i * MacAddress.Length)..]);
        Commit(ref sink, reply, AoeProtocol.ReserveHeaderLength + reservation.Length * MacAddress.Length);
    }

    /// <summary>Force-sets the reservation from the management side (fencing); throws when the change cannot be saved.</summary>
    public void SetReservation(ExportedVolume volume, IReadOnlyList<MacAddress> holders) => ManagementUpdate(volume, reservation: [.. holders.Distinct()]);

    /// <summary>Replaces the MAC mask from the management side; throws when the change cannot be saved.</summary>
    public void SetMacMask(ExportedVolume volume, IReadOnlyList<MacAddress> macs) => ManagementUpdate(volume, mask: [.. macs.Distinct()]);

    /// <summary>Force-sets the config string from the management side; throws when the change cannot be saved.</summary>
    public void SetConfigString(ExportedVolume volume, byte[] value) => ManagementUpdate(volume, config: value);

    private void ManagementUpdate(ExportedVolume volume, MacAddress[]? mask = null, MacAddress[]? reservation = null, byte[]? config = null)
    {
        if (mask?.Length > MaxMacList || reservation?.Length > MaxMacList)
            throw new StorageException($"at most {MaxMacList} MAC addresses fit a list");
        if (config?.Length > AoeProtocol.MaxConfigStringLength)
            throw new StorageException($"a config string holds at most {AoeProtocol.MaxConfigStringLength} bytes");
        lock (volume.Sync)
            volume.Update(_persist, mask, reservation, config);
    }

    /// <summary>Persists a runtime-state change; a failed save (full disk, I/O error) refuses the command and changes nothing.</summary>
    private AoeError TryUpdate(ExportedVolume volume, MacAddress[]? mask = null, MacAddress[]? reservation = null, byte[]? config = null)
    {
        try
        {
            volume.Update(_persist, mask, reservation, config);
            return AoeError.None;
        }
        catch (Exception e) when (e is IOException or StorageException or UnauthorizedAccessException)
        {
            Interlocked.Increment(ref Counters.IoErrors);
            return AoeError.DeviceUnavailable;
        }
    }
}
