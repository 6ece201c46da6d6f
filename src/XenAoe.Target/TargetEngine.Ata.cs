using XenAoe.Aoe;
using XenAoe.Storage;

namespace XenAoe.Target;

public sealed partial class TargetEngine
{
    /// <summary>Sector count register value CHECK POWER MODE returns: active or idle.</summary>
    private const byte PowerModeActive = 0xFF;

    private void HandleAta<TSink>(ReadOnlySpan<byte> frame, in AoeHeader header, ExportedVolume volume, in LinkInfo link, ref TSink sink)
        where TSink : IReplySink
    {
        if (!AtaHeader.TryRead(frame, out var ata))
        {
            Interlocked.Increment(ref Counters.BadArgument);
            ReplyError(frame, volume, link, AoeError.BadArgument, ref sink);
            return;
        }

        var command = ata.CommandOrStatus;
        var touchesMedia = command is AtaCommands.ReadSectors or AtaCommands.ReadSectorsExt
            or AtaCommands.WriteSectors or AtaCommands.WriteSectorsExt or AtaCommands.FlushCache or AtaCommands.FlushCacheExt;
        if (touchesMedia && volume.IsReservedAgainst(header.Source))
        {
            Interlocked.Increment(ref Counters.Reserved);
            ReplyError(frame, volume, link, AoeError.TargetReserved, ref sink);
            return;
        }

        var reply = sink.Next();
        AoeHeader.WriteResponse(reply, frame, link.LocalMac, volume.Shelf, volume.Slot, AoeError.None);
        frame[AoeProtocol.HeaderLength..AoeProtocol.AtaHeaderLength].CopyTo(reply[AoeProtocol.HeaderLength..]);
        var data = reply[AoeProtocol.AtaHeaderLength..];
        var dataLength = 0;
        byte error;
        // Set when the reply may leave only once writes are durable (group commit: the sink syncs once for many replies).
        long syncFirst = 0, syncLast = -1;

        switch (command)
        {
            case AtaCommands.ReadSectors or AtaCommands.ReadSectorsExt:
                error = Read(ata, volume, link, data);
                if (error == 0)
                    dataLength = ata.SectorCount * AoeProtocol.SectorSize;
                break;
            case AtaCommands.WriteSectors or AtaCommands.WriteSectorsExt:
                var payload = frame[AoeProtocol.AtaHeaderLength..];
                error = ValidateWrite(ata, volume, link, payload);
                if (error != 0)
                    break;
                // Only valid writes enter the cache: a malformed frame reusing a tag must not shadow the real one.
                var key = new ReplyCache.Key(header.Tag, volume.Shelf, volume.Slot, ata.SectorCount, ata.Lba,
                    ReplyCache.Fingerprint(payload[..(ata.SectorCount * AoeProtocol.SectorSize)]));
                long sequence;
                switch (_replyCache.Begin(key, out var cachedError, out sequence))
                {
                    case ReplyCache.Lookup.InProgress:
                        Interlocked.Increment(ref Counters.DuplicatesAnswered);
                        return; // the original is still being applied; the initiator retransmits and then finds it done
                    case ReplyCache.Lookup.Done:
                        Interlocked.Increment(ref Counters.DuplicatesAnswered);
                        error = cachedError;
                        break;
                    default:
                        error = Write(ata, volume, payload, out sequence);
                        _replyCache.Complete(key, error, sequence);
                        break;
                }
                // A write-through write is acknowledged once durable; so is a retransmission of one, which waits for the
                // same write (its original's reply may still be waiting in another worker's group).
                if (error == 0 && volume.Store.WriteCache == WriteCacheMode.WriteThrough)
                    (syncFirst, syncLast) = (sequence, sequence);
                break;
            case AtaCommands.IdentifyDevice:
                volume.Identify.CopyTo(data);
                dataLength = IdentifyDevice.Length;
                error = 0;
                break;
            case AtaCommands.CheckPowerMode:
                reply[26] = PowerModeActive;
                error = 0;
                break;
            case AtaCommands.FlushCache or AtaCommands.FlushCacheExt:
                // Every write completed before the FLUSH arrived, in any worker, is durable before it is acknowledged.
                Interlocked.Increment(ref Counters.Flushes);
                syncLast = volume.Store.WriteSequence;
                syncFirst = syncLast;
                error = 0;
                break;
            default:
                Interlocked.Increment(ref Counters.UnsupportedAta);
                error = AtaStatus.Abort;
                break;
        }

        reply[25] = error;
        reply[27] = StatusFor(error);
        if (syncLast < 0)
        {
            Commit(ref sink, reply, AoeProtocol.AtaHeaderLength + dataLength);
            return;
        }
        sink.CommitAfterSync(PadToMinimum(reply, AoeProtocol.AtaHeaderLength), new PendingSync(volume.Store, syncFirst, syncLast));
        Interlocked.Increment(ref Counters.RepliesSent);
    }

    private static byte StatusFor(byte error) => error == 0 ? AtaStatus.Ready : (byte)(AtaStatus.Ready | AtaStatus.Error);

    /// <summary>Returns the ATA error register: 0 on success.</summary>
    private byte Read(in AtaHeader ata, ExportedVolume volume, in LinkInfo link, Span<byte> data)
    {
        var count = ata.SectorCount;
        if (count > link.MaxSectors)
        {
            Interlocked.Increment(ref Counters.TooManySectors);
            return AtaStatus.Abort;
        }
        if (ata.Lba + count > volume.Sectors)
        {
            Interlocked.Increment(ref Counters.OutOfRange);
            return AtaStatus.IdNotFound;
        }
        try
        {
            volume.Store.Read(data[..(count * AoeProtocol.SectorSize)], (long)ata.Lba * AoeProtocol.SectorSize);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // The medium failed (or the volume was just replaced): the initiator gets UNC and decides; the target keeps serving.
            Interlocked.Increment(ref Counters.IoErrors);
            return AtaStatus.Uncorrectable;
        }
        Interlocked.Add(ref Counters.SectorsRead, count);
        return 0;
    }

    private byte ValidateWrite(in AtaHeader ata, ExportedVolume volume, in LinkInfo link, ReadOnlySpan<byte> payload)
    {
        var count = ata.SectorCount;
        if (count > link.MaxSectors || payload.Length < count * AoeProtocol.SectorSize)
        {
            // Never infer the data length from the frame: a count the frame does not carry is refused whole.
            Interlocked.Increment(ref Counters.TooManySectors);
            return AtaStatus.Abort;
        }
        if (volume.ReadOnly)
        {
            Interlocked.Increment(ref Counters.BadArgument);
            return AtaStatus.Abort;
        }
        if (ata.Lba + count > volume.Sectors)
        {
            Interlocked.Increment(ref Counters.OutOfRange);
            return AtaStatus.IdNotFound;
        }
        return 0;
    }

    private byte Write(in AtaHeader ata, ExportedVolume volume, ReadOnlySpan<byte> payload, out long sequence)
    {
        var count = ata.SectorCount;
        sequence = 0;
        try
        {
            sequence = volume.Store.Write(payload[..(count * AoeProtocol.SectorSize)], (long)ata.Lba * AoeProtocol.SectorSize);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // ENOSPC on a sparse file lands here too: the write is refused and reported, nothing else is touched.
            Interlocked.Increment(ref Counters.IoErrors);
            return AtaStatus.Uncorrectable;
        }
        Interlocked.Add(ref Counters.SectorsWritten, count);
        return 0;
    }
}
