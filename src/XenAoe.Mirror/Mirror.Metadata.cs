using XenAoe.Block;

namespace XenAoe.Mirror;

public sealed partial class Mirror
{
    /// <summary>Writes bitmap blocks to every live leg until each listed block is on disk at least at its version.</summary>
    private async Task PersistBitmapAsync(List<(int Block, long Version)> needed, CancellationToken ct)
    {
        var buffer = new byte[MirrorSuperblock.Length];
        await _bitmapWrite.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            foreach (var (block, version) in needed)
            {
                if (_bitmap.IsPersisted(block, version))
                    continue; // another writer's persist already covered it
                var snapshot = _bitmap.Snapshot(block, buffer);
                var written = 0;
                foreach (var leg in LiveLegs())
                {
                    try
                    {
                        await leg.Device!.WriteAsync(MirrorSuperblock.Length + (long)block * MirrorSuperblock.Length, buffer, ct: ct).ConfigureAwait(false);
                        written++;
                    }
                    catch (BlockDeviceException e) when (e.Error is BlockError.Io or BlockError.NoSpace)
                    {
                        await FailLegAsync(leg, $"bitmap write failed: {e.Message}").ConfigureAwait(false);
                    }
                }
                if (written == 0)
                    throw new BlockDeviceException(BlockError.Io, "the write-intent bitmap could not be written to any leg");
                _bitmap.MarkPersisted(block, snapshot);
            }
        }
        finally
        {
            _bitmapWrite.Release();
        }
    }

    /// <summary>Writes each present leg's superblock (best effort on legs that fail meanwhile: they are marked failed).</summary>
    private async Task WriteSuperblocksAsync(bool clean)
    {
        var buffer = new byte[MirrorSuperblock.Length];
        await _superblockWrite.WaitAsync().ConfigureAwait(false);
        try
        {
            foreach (var leg in LiveLegs())
            {
                var sb = leg.Superblock with { Clean = clean };
                sb.Write(buffer);
                try
                {
                    await leg.Device!.WriteAsync(0, buffer, forceUnitAccess: true).ConfigureAwait(false);
                    leg.Superblock = sb;
                }
                catch (BlockDeviceException e) when (e.Error is BlockError.Io or BlockError.NoSpace)
                {
                    MarkFailed(leg, $"superblock write failed: {e.Message}");
                }
            }
        }
        finally
        {
            _superblockWrite.Release();
        }
    }

    /// <summary>
    /// Drops a leg. If that leaves a mirror that was in step with one leg, the survivors start a new epoch (parent: the old one)
    /// and persist it; every writer awaits that before acknowledging, so a crash right after still knows which leg is stale.
    /// </summary>
    private Task FailLegAsync(Leg leg, string reason)
    {
        lock (_stateLock)
        {
            if (leg.State == LegState.Failed)
                return _degrading;
            var wasInSync = leg.State == LegState.InSync;
            MarkFailed(leg, reason);
            if (wasInSync)
            {
                var previous = _degrading;
                _degrading = StartNewEpochAsync(previous);
            }
            return _degrading;
        }
    }

    private void MarkFailed(Leg leg, string reason)
    {
        lock (_stateLock)
        {
            if (leg.State == LegState.Failed)
                return;
            leg.State = LegState.Failed;
            leg.Reason = reason;
        }
        Log($"leg {leg.Index} ({leg.Name}) failed: {reason}; running degraded");
    }

    private async Task StartNewEpochAsync(Task previous)
    {
        await previous.ConfigureAwait(false);
        var epoch = NewEpoch();
        Leg[] survivors;
        lock (_stateLock)
            survivors = [.. _legs.Where(l => l.State == LegState.InSync)];
        if (survivors.Length == 0)
            throw new BlockDeviceException(BlockError.Io, "no in-sync mirror leg is left");
        foreach (var survivor in survivors)
            survivor.Superblock = survivor.Superblock with { ParentEpoch = survivor.Superblock.Epoch, Epoch = epoch, Events = survivor.Superblock.Events + 1 };
        await WriteSuperblocksAsync(clean: false).ConfigureAwait(false);
    }

    private static ulong NewEpoch() => (ulong)Random.Shared.NextInt64(1, long.MaxValue);

    /// <summary>Clears quiet regions while both legs are in step; while degraded the bitmap is the record of what the stale leg misses.</summary>
    private async Task CleanLoopAsync()
    {
        using var timer = new PeriodicTimer(_options.CleanInterval, _options.Time);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token).ConfigureAwait(false))
            {
                if (Health != MirrorHealth.Healthy || _bitmap.Sweep() == 0)
                    continue;
                try
                {
                    await PersistBitmapAsync(_bitmap.UnpersistedBlocks(), _stopping.Token).ConfigureAwait(false);
                }
                catch (BlockDeviceException)
                {
                    // Every leg failed; the I/O path reports that to the VM. A set bit on disk only costs resync time.
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }
}
