using XenAoe.Block;

namespace XenAoe.Mirror;

public sealed partial class Mirror
{
    /// <summary>
    /// Formats two legs as a new mirror. With <paramref name="assumeClean"/> (both legs known identical, e.g. fresh sparse volumes
    /// that read as zeros) no initial copy is made; otherwise leg 1 is filled from leg 0 in the background.
    /// </summary>
    public static async Task<Mirror> CreateAsync(IBlockDevice leg0, IBlockDevice leg1, MirrorOptions options, bool assumeClean,
        string name0 = "leg0", string name1 = "leg1", CancellationToken ct = default)
    {
        if (!System.Numerics.BitOperations.IsPow2(options.RegionSize) || options.RegionSize < 4096)
            throw new ArgumentException("region size must be a power of two of at least 4 KiB");
        var legSize = Math.Min(leg0.Size, leg1.Size);
        var regions = (legSize + options.RegionSize - 1) / options.RegionSize;
        const long align = 1 << 20;
        var dataOffset = (MirrorSuperblock.Length + MirrorSuperblock.BitmapBytes(regions) + align - 1) / align * align;
        if (legSize - dataOffset < options.RegionSize)
            throw new MirrorAssemblyException($"legs of {legSize} bytes are too small for a mirror (metadata takes {dataOffset} bytes)");
        var epoch = NewEpoch();
        var geometry = new MirrorSuperblock
        {
            MirrorId = Guid.NewGuid(),
            LegId = Guid.Empty,
            LegIndex = 0,
            RegionSize = options.RegionSize,
            DataOffset = dataOffset,
            DataSize = (legSize - dataOffset) / IBlockDevice.SectorSize * IBlockDevice.SectorSize,
            Events = 1,
            Epoch = epoch,
        };
        var sb0 = geometry with { LegId = Guid.NewGuid() };
        var sb1 = geometry with { LegId = Guid.NewGuid(), LegIndex = 1, Incomplete = !assumeClean };
        var zeros = new byte[MirrorSuperblock.BitmapBytes(geometry.Regions)];
        foreach (var (leg, sb) in new[] { (leg0, sb0), (leg1, sb1) })
        {
            await leg.WriteAsync(MirrorSuperblock.Length, zeros, ct: ct).ConfigureAwait(false);
            var block = new byte[MirrorSuperblock.Length];
            sb.Write(block);
            await leg.WriteAsync(0, block, forceUnitAccess: true, ct).ConfigureAwait(false);
        }
        var mirror = new Mirror(geometry, [new Leg(0, name0, leg0, sb0, LegState.InSync),
            new Leg(1, name1, leg1, sb1, assumeClean ? LegState.InSync : LegState.Resyncing)], options);
        if (!assumeClean)
        {
            mirror._bitmap.MarkDirty(0, geometry.Regions - 1);
            await mirror.PersistBitmapAsync(mirror._bitmap.UnpersistedBlocks(), ct).ConfigureAwait(false);
            mirror.StartResync(mirror._legs[0], mirror._legs[1]);
        }
        mirror.Log($"created: {geometry.DataSize} bytes, {geometry.Regions} regions of {geometry.RegionSize} bytes");
        return mirror;
    }

    /// <summary>
    /// Assembles a mirror from its legs' metadata, deciding which leg is current and resyncing the other's dirty regions.
    /// A missing leg (null) is allowed only with <paramref name="allowDegraded"/>: the caller must know the present leg is the
    /// current one (its epoch), because a lone stale leg cannot tell it is stale.
    /// </summary>
    public static async Task<Mirror> AssembleAsync(IBlockDevice? leg0, IBlockDevice? leg1, MirrorOptions options, bool allowDegraded = false,
        string name0 = "leg0", string name1 = "leg1", CancellationToken ct = default)
    {
        var read0 = leg0 is null ? default : await ReadSuperblockAsync(leg0, name0, ct).ConfigureAwait(false);
        var read1 = leg1 is null ? default : await ReadSuperblockAsync(leg1, name1, ct).ConfigureAwait(false);
        var (a, b) = (read0.Superblock, read1.Superblock);
        if (a is null && b is null)
            throw new MirrorAssemblyException($"no leg carries mirror metadata: {name0}: {read0.Problem ?? "absent"}; {name1}: {read1.Problem ?? "absent"}");
        if (a is not null && b is not null)
        {
            if (a.MirrorId != b.MirrorId)
                throw new MirrorAssemblyException($"{name0} belongs to mirror {a.MirrorId} but {name1} to mirror {b.MirrorId}");
            if (a.LegIndex == b.LegIndex)
                throw new MirrorAssemblyException($"{name0} and {name1} are both leg {a.LegIndex} of mirror {a.MirrorId}: one is a copy, not the other leg");
            if (a.LegIndex != 0)
                (leg0, leg1, a, b, name0, name1) = (leg1, leg0, b, a, name1, name0);
            var source = ChooseSource(a, b!, name0, name1);
            var legs = new[]
            {
                new Leg(0, name0, leg0, a, source == 1 ? LegState.Resyncing : LegState.InSync),
                new Leg(1, name1, leg1, b!, source == 0 ? LegState.Resyncing : LegState.InSync),
            };
            var mirror = new Mirror(a, legs, options);
            await mirror.LoadBitmapsAsync(ct).ConfigureAwait(false);
            var needsResync = source is 0 or 1 || !a.Clean || !b!.Clean;
            if (needsResync && mirror._bitmap.DirtyCount > 0)
            {
                var from = legs[source == 1 ? 1 : 0];
                var to = legs[source == 1 ? 0 : 1];
                to.State = LegState.Resyncing;
                mirror.StartResync(from, to);
            }
            else
            {
                foreach (var leg in legs)
                    leg.State = LegState.InSync;
                if (source is 0 or 1)
                    mirror.Log("legs differed in metadata only; no region needs copying");
            }
            await mirror.WriteSuperblocksAsync(clean: false).ConfigureAwait(false);
            return mirror;
        }

        if (!allowDegraded)
            throw new MirrorAssemblyException($"only one leg is usable ({(a is null ? $"{name0}: {read0.Problem ?? "absent"}" : $"{name1}: {read1.Problem ?? "absent"}")}); " +
                "assemble degraded only if the present leg is known to be current");
        var (present, device, name) = a is not null ? (a, leg0, name0) : (b!, leg1, name1);
        if (present.Incomplete)
            throw new MirrorAssemblyException($"{name} is an incomplete copy (a resync never finished): it cannot run alone");
        var lone = new Leg(present.LegIndex, name, device, present, LegState.InSync);
        var missing = new Leg(1 - present.LegIndex, present.LegIndex == 0 ? name1 : name0, null, present, LegState.Failed) { Reason = "absent at assembly" };
        var degraded = new Mirror(present, present.LegIndex == 0 ? [lone, missing] : [missing, lone], options);
        await degraded.LoadBitmapsAsync(ct).ConfigureAwait(false);
        lone.Superblock = present with { ParentEpoch = present.Epoch, Epoch = NewEpoch(), Events = present.Events + 1 };
        await degraded.WriteSuperblocksAsync(clean: false).ConfigureAwait(false);
        degraded.Log($"assembled degraded on {name}");
        return degraded;
    }

    /// <summary>0 or 1: that leg is current and the other stale; -1: equal (in step, maybe dirty after a crash).</summary>
    private static int ChooseSource(MirrorSuperblock a, MirrorSuperblock b, string nameA, string nameB)
    {
        if (a.Incomplete && b.Incomplete)
            throw new MirrorAssemblyException($"both {nameA} and {nameB} are incomplete copies: no leg holds the whole disk");
        if (a.Incomplete)
            return 1;
        if (b.Incomplete)
            return 0;
        if (a.Epoch == b.Epoch)
            return a.Events == b.Events ? -1 : a.Events > b.Events ? 0 : 1;
        if (b.ParentEpoch == a.Epoch)
            return 1;
        if (a.ParentEpoch == b.Epoch)
            return 0;
        throw new MirrorAssemblyException(
            $"split brain: {nameA} (epoch {a.Epoch:x16}, from {a.ParentEpoch:x16}, events {a.Events}) and {nameB} (epoch {b.Epoch:x16}, " +
            $"from {b.ParentEpoch:x16}, events {b.Events}) were each written without the other. Neither is a copy of the other; pick the " +
            "leg to keep, replace the other with a new volume (full resync).");
    }

    private static async Task<(MirrorSuperblock? Superblock, string? Problem)> ReadSuperblockAsync(IBlockDevice leg, string name, CancellationToken ct)
    {
        var block = new byte[MirrorSuperblock.Length];
        try
        {
            await leg.ReadAsync(0, block, ct).ConfigureAwait(false);
        }
        catch (BlockDeviceException e)
        {
            return (null, $"unreadable: {e.Message}");
        }
        var sb = MirrorSuperblock.TryRead(block, out var problem);
        if (sb is not null && leg.Size < sb.DataOffset + sb.DataSize)
            return (null, $"{name} is smaller ({leg.Size} bytes) than the mirror it claims to hold");
        return (sb, problem);
    }

    /// <summary>The union of both legs' bitmaps: every region either leg may have written without the other.</summary>
    private async Task LoadBitmapsAsync(CancellationToken ct)
    {
        var buffer = new byte[MirrorSuperblock.Length];
        foreach (var leg in _legs.Where(l => l.Device is not null))
        {
            for (var block = 0; block < _bitmap.Blocks; block++)
            {
                await leg.Device!.ReadAsync(MirrorSuperblock.Length + (long)block * MirrorSuperblock.Length, buffer, ct).ConfigureAwait(false);
                _bitmap.Merge(block, buffer);
            }
        }
        await PersistBitmapAsync(_bitmap.UnpersistedBlocks(), ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Replaces a leg (failed, or being drained) with a new volume, usually on a third disk server: it is formatted as an incomplete
    /// copy and filled from the in-sync leg in the background (watch <see cref="Status"/>). The old device is closed.
    /// </summary>
    public async Task ReplaceLegAsync(int index, IBlockDevice device, string name, CancellationToken ct = default)
    {
        var target = _legs[index];
        var source = _legs[1 - index];
        if (source.State != LegState.InSync)
            throw new MirrorAssemblyException($"leg {source.Index} is not in sync: replacing leg {index} would leave no full copy");
        if (device.Size < DataOffset + Size)
            throw new MirrorAssemblyException($"{name} has {device.Size} bytes; the mirror needs {DataOffset + Size}");
        await _resync.ConfigureAwait(false);
        MarkFailed(target, "being replaced");
        var old = target.Device;
        var sb = source.Superblock with { LegId = Guid.NewGuid(), LegIndex = index, Incomplete = true, Clean = false };
        var block = new byte[MirrorSuperblock.Length];
        sb.Write(block);
        await device.WriteAsync(0, block, forceUnitAccess: true, ct).ConfigureAwait(false);
        _bitmap.MarkDirty(0, _bitmap.Regions - 1);
        await PersistBitmapAsync(_bitmap.UnpersistedBlocks(), ct).ConfigureAwait(false);
        lock (_stateLock)
        {
            target.Device = device;
            target.Superblock = sb;
            target.State = LegState.Resyncing;
            target.Reason = null;
        }
        if (old is not null)
            await old.DisposeAsync().ConfigureAwait(false);
        Log($"leg {index} replaced by {name}: full resync of {Size} bytes");
        StartResync(source, target);
    }

    /// <summary>Takes back a leg that failed (its disk server returned): resyncs only the regions written while it was away.</summary>
    public async Task ReaddLegAsync(int index, IBlockDevice device, CancellationToken ct = default)
    {
        var target = _legs[index];
        var source = _legs[1 - index];
        if (target.State != LegState.Failed)
            throw new InvalidOperationException($"leg {index} is {target.State}, not failed");
        var (sb, problem) = await ReadSuperblockAsync(device, target.Name, ct).ConfigureAwait(false);
        if (sb is null)
            throw new MirrorAssemblyException($"{target.Name}: {problem}; replace the leg instead");
        if (sb.MirrorId != MirrorId || sb.LegIndex != index)
            throw new MirrorAssemblyException($"{target.Name} is leg {sb.LegIndex} of mirror {sb.MirrorId}, not leg {index} of {MirrorId}");
        if (sb.Epoch != source.Superblock.ParentEpoch && sb.Epoch != source.Superblock.Epoch && !sb.Incomplete)
            throw new MirrorAssemblyException($"{target.Name} was written without this mirror (epoch {sb.Epoch:x16}): split brain; replace it instead");
        await _resync.ConfigureAwait(false);
        lock (_stateLock)
        {
            if (target.Device is { } old && !ReferenceEquals(old, device))
                _ = old.DisposeAsync();
            target.Device = device;
            target.Superblock = sb;
            target.State = LegState.Resyncing;
            target.Reason = null;
        }
        Log($"leg {index} ({target.Name}) is back: resyncing {_bitmap.DirtyCount} dirty regions");
        StartResync(source, target);
    }
}
