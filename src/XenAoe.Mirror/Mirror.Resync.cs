using System.Buffers;
using System.Diagnostics;
using XenAoe.Block;

namespace XenAoe.Mirror;

public sealed partial class Mirror
{
    private void StartResync(Leg from, Leg to)
    {
        Interlocked.Exchange(ref _resyncDone, 0);
        Interlocked.Exchange(ref _resyncTotal, _bitmap.DirtyCount * _bitmap.RegionSize);
        Log($"resync {from.Name} -> {to.Name}: {_bitmap.DirtyCount} regions");
        _resync = Task.Run(() => ResyncAsync(from, to, _stopping.Token));
    }

    /// <summary>
    /// Copies every dirty region from the current leg to the stale one, always in that direction. VM writes keep going to both
    /// legs meanwhile; a region is copied optimistically and copied again if a VM write started during the copy, so the stale leg
    /// never ends with older data than a completed write. Throttled to <see cref="MirrorOptions.ResyncBytesPerSecond"/>.
    /// </summary>
    private async Task ResyncAsync(Leg from, Leg to, CancellationToken ct)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(_options.ResyncChunk);
        var started = Stopwatch.GetTimestamp();
        long copied = 0;
        try
        {
            foreach (var region in _bitmap.DirtyRegions().ToList())
            {
                var regionStart = region * _bitmap.RegionSize;
                var regionLength = Math.Min(_bitmap.RegionSize, Size - regionStart);
                while (true)
                {
                    ct.ThrowIfCancellationRequested();
                    if (from.State != LegState.InSync || to.State != LegState.Resyncing)
                        return; // a leg failed meanwhile: the bitmap keeps what is left for the next resync
                    var (before, busy) = _bitmap.WriteState(region);
                    if (busy)
                    {
                        await Task.Delay(1, ct).ConfigureAwait(false); // let the VM's write finish first
                        continue;
                    }
                    for (long done = 0; done < regionLength; done += _options.ResyncChunk)
                    {
                        var length = (int)Math.Min(_options.ResyncChunk, regionLength - done);
                        var chunk = buffer.AsMemory(0, length);
                        if (!await CopyAsync(from, to, DataOffset + regionStart + done, chunk, ct).ConfigureAwait(false))
                            return; // a leg failed and was dropped; the bitmap keeps what is left for the next resync
                        copied += length;
                        Interlocked.Add(ref _resyncDone, length);
                        await ThrottleAsync(started, copied, ct).ConfigureAwait(false);
                    }
                    var (after, busyAfter) = _bitmap.WriteState(region);
                    if (after == before && !busyAfter)
                        break;
                }
            }
            await to.Device!.FlushAsync(ct).ConfigureAwait(false);
            lock (_stateLock)
            {
                if (to.State != LegState.Resyncing || from.State != LegState.InSync)
                    return;
                to.State = LegState.InSync;
            }
            var events = Math.Max(from.Superblock.Events, to.Superblock.Events) + 1;
            from.Superblock = from.Superblock with { Events = events };
            to.Superblock = from.Superblock with { LegId = to.Superblock.LegId, LegIndex = to.Index, Incomplete = false };
            await WriteSuperblocksAsync(clean: false).ConfigureAwait(false);
            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            Log($"resync {from.Name} -> {to.Name} done: {copied} bytes in {seconds:0.000} s ({copied / 1e6 / Math.Max(seconds, 1e-6):0} MB/s)");
        }
        catch (BlockDeviceException e) when (e.Error is BlockError.Io or BlockError.NoSpace)
        {
            await FailLegAsync(to, $"resync flush failed: {e.Message}").ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Copies one chunk; a failing side is dropped (the source if the read fails, the target if the write does).</summary>
    private async Task<bool> CopyAsync(Leg from, Leg to, long offset, Memory<byte> chunk, CancellationToken ct)
    {
        try
        {
            await from.Device!.ReadAsync(offset, chunk, ct).ConfigureAwait(false);
        }
        catch (BlockDeviceException e) when (e.Error is BlockError.Io or BlockError.NoSpace)
        {
            await FailLegAsync(from, $"read during resync failed: {e.Message}").ConfigureAwait(false);
            return false;
        }
        try
        {
            await to.Device!.WriteAsync(offset, chunk, ct: ct).ConfigureAwait(false);
            return true;
        }
        catch (BlockDeviceException e) when (e.Error is BlockError.Io or BlockError.NoSpace)
        {
            await FailLegAsync(to, $"write during resync failed: {e.Message}").ConfigureAwait(false);
            return false;
        }
    }

    private async Task ThrottleAsync(long started, long copied, CancellationToken ct)
    {
        if (_options.ResyncBytesPerSecond <= 0)
            return;
        var due = TimeSpan.FromSeconds((double)copied / _options.ResyncBytesPerSecond) - Stopwatch.GetElapsedTime(started);
        if (due > TimeSpan.FromMilliseconds(1))
            await Task.Delay(due, ct).ConfigureAwait(false);
    }
}
