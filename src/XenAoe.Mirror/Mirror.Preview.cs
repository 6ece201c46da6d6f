using XenAoe.Block;

namespace XenAoe.Mirror;

public sealed partial class Mirror
{
    /// <summary>
    /// A read-only view of the mirrored data on the leg its metadata says is current, without assembling the mirror or writing
    /// anything: for a host that must answer reads while another host still runs the mirror (a migration destination's
    /// hypervisor probes its disks before the VM arrives). Reads see what that leg holds now; nothing here is coherent with
    /// writes in flight elsewhere, so only use it for such probes.
    /// </summary>
    public static async Task<IBlockDevice> OpenPreviewAsync(IBlockDevice? leg0, IBlockDevice? leg1, string name0 = "leg0", string name1 = "leg1",
        CancellationToken ct = default)
    {
        var read0 = leg0 is null ? default : await ReadSuperblockAsync(leg0, name0, ct).ConfigureAwait(false);
        var read1 = leg1 is null ? default : await ReadSuperblockAsync(leg1, name1, ct).ConfigureAwait(false);
        var (a, b) = (read0.Superblock, read1.Superblock);
        (IBlockDevice Leg, MirrorSuperblock Superblock)? current = (a, b) switch
        {
            (null, null) => null,
            (not null, null) => a.Incomplete ? null : (leg0!, a),
            (null, not null) => b.Incomplete ? null : (leg1!, b),
            _ => ChooseSource(a, b, name0, name1) == 1 ? (leg1!, b) : (leg0!, a),
        };
        if (current is not { } chosen)
            throw new MirrorAssemblyException($"no complete leg to preview: {name0}: {read0.Problem ?? "absent or incomplete"}; {name1}: {read1.Problem ?? "absent or incomplete"}");
        return new LegDataView(chosen.Leg, chosen.Superblock.DataOffset, chosen.Superblock.DataSize);
    }

    /// <summary>The data area of one leg, read-only. The leg stays its owner's: disposing the view does not close it.</summary>
    private sealed class LegDataView(IBlockDevice leg, long offset, long size) : IBlockDevice
    {
        public long Size => size;

        public bool ReadOnly => true;

        public ValueTask ReadAsync(long at, Memory<byte> buffer, CancellationToken ct = default)
        {
            if (!BlockRange.IsValid(at, buffer.Length, size))
                throw BlockRange.Invalid("mirror preview", at, buffer.Length, size);
            return leg.ReadAsync(offset + at, buffer, ct);
        }

        public ValueTask WriteAsync(long at, ReadOnlyMemory<byte> data, bool forceUnitAccess = false, CancellationToken ct = default) => Refuse();

        public ValueTask FlushAsync(CancellationToken ct = default) => ValueTask.CompletedTask;

        public ValueTask WriteZeroesAsync(long at, long length, CancellationToken ct = default) => Refuse();

        public ValueTask TrimAsync(long at, long length, CancellationToken ct = default) => Refuse();

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;

        private static ValueTask Refuse() =>
            ValueTask.FromException(new BlockDeviceException(BlockError.NotPermitted, "a mirror preview is read-only"));
    }
}
