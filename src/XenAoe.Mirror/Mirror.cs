using XenAoe.Block;

namespace XenAoe.Mirror;

/// <summary>
/// RAID1 over two legs on two disk servers. A write completes when every live leg acknowledged it; reads are spread over in-sync
/// legs; FLUSH goes to both. A leg whose I/O fails is dropped without failing the VM's I/O: the survivor starts a new epoch (see
/// <see cref="MirrorSuperblock"/>) before the write is acknowledged, so the failed leg is recognised as stale forever after.
/// The write-intent bitmap limits resync to regions written while a leg was away or in flight at a crash.
/// Thread-safe; many requests may be in flight.
/// </summary>
public sealed partial class Mirror : IBlockDevice
{
    private readonly MirrorOptions _options;
    private readonly Leg[] _legs;
    private readonly WriteIntentBitmap _bitmap;
    private readonly SemaphoreSlim _bitmapWrite = new(1, 1);
    private readonly SemaphoreSlim _superblockWrite = new(1, 1);
    private readonly object _stateLock = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _cleaner;
    private Task _resync = Task.CompletedTask;
    private Task _degrading = Task.CompletedTask;
    private int _nextRead;
    private long _resyncDone;
    private long _resyncTotal;

    private Mirror(MirrorSuperblock geometry, Leg[] legs, MirrorOptions options)
    {
        _options = options;
        _legs = legs;
        MirrorId = geometry.MirrorId;
        DataOffset = geometry.DataOffset;
        Size = geometry.DataSize;
        _bitmap = new WriteIntentBitmap(geometry.Regions, geometry.RegionSize);
        _cleaner = Task.Run(CleanLoopAsync);
    }

    public Guid MirrorId { get; }
    public long Size { get; }
    public bool ReadOnly => false;
    public WriteIntentBitmap Bitmap => _bitmap;

    /// <summary>Where data starts on each leg: the superblock and bitmap come first.</summary>
    public long DataOffset { get; }

    /// <summary>Completes when the current resync (if any) ends.</summary>
    public Task ResyncCompletion => _resync;

    public MirrorHealth Health
    {
        get
        {
            lock (_stateLock)
            {
                return _legs.Any(l => l.State == LegState.Failed) ? MirrorHealth.Degraded
                    : _legs.Any(l => l.State == LegState.Resyncing) ? MirrorHealth.Resyncing : MirrorHealth.Healthy;
            }
        }
    }

    /// <summary>A full snapshot, including a count of dirty regions (a pass over the bitmap): for display, not for hot loops.</summary>
    public MirrorStatus Status
    {
        get
        {
            lock (_stateLock)
            {
                return new MirrorStatus(MirrorId, Health, Size, _bitmap.RegionSize, _bitmap.DirtyCount, Interlocked.Read(ref _resyncDone),
                    Interlocked.Read(ref _resyncTotal),
                    [.. _legs.Select(l => new LegStatus(l.Index, l.Name, l.State, l.Superblock.Events, l.Superblock.Epoch, l.Reason))]);
            }
        }
    }

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken ct = default)
    {
        Check(offset, buffer.Length);
        while (true)
        {
            var leg = PickReadLeg() ?? throw new BlockDeviceException(BlockError.Io, "no in-sync mirror leg is left to read from");
            try
            {
                await leg.Device!.ReadAsync(DataOffset + offset, buffer, ct).ConfigureAwait(false);
                return;
            }
            catch (BlockDeviceException e) when (e.Error is BlockError.Io or BlockError.NoSpace)
            {
                await FailLegAsync(leg, $"read failed: {e.Message}").ConfigureAwait(false);
            }
        }
    }

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool forceUnitAccess = false, CancellationToken ct = default)
    {
        Check(offset, data.Length);
        if (data.Length == 0)
            return;
        await WriteAllLegsAsync(offset, data.Length, (device, at) => device.WriteAsync(at, data, forceUnitAccess, ct), ct).ConfigureAwait(false);
    }

    public async ValueTask WriteZeroesAsync(long offset, long length, CancellationToken ct = default)
    {
        Check(offset, length);
        if (length == 0)
            return;
        await WriteAllLegsAsync(offset, length, (device, at) => device.WriteZeroesAsync(at, length, ct), ct).ConfigureAwait(false);
    }

    /// <summary>Passed to both legs; a leg that cannot trim is not failed for it (trim is advisory).</summary>
    public async ValueTask TrimAsync(long offset, long length, CancellationToken ct = default)
    {
        Check(offset, length);
        foreach (var leg in LiveLegs())
        {
            try
            {
                await leg.Device!.TrimAsync(DataOffset + offset, length, ct).ConfigureAwait(false);
            }
            catch (BlockDeviceException)
            {
                // Advisory: data stays valid either way.
            }
        }
    }

    public async ValueTask FlushAsync(CancellationToken ct = default)
    {
        var ok = 0;
        foreach (var leg in LiveLegs())
        {
            try
            {
                await leg.Device!.FlushAsync(ct).ConfigureAwait(false);
                ok++;
            }
            catch (BlockDeviceException e) when (e.Error is BlockError.Io or BlockError.NoSpace)
            {
                await FailLegAsync(leg, $"flush failed: {e.Message}").ConfigureAwait(false);
            }
        }
        if (ok == 0)
            throw new BlockDeviceException(BlockError.Io, "flush failed on every mirror leg");
    }

    private async ValueTask WriteAllLegsAsync(long offset, long length, Func<IBlockDevice, long, ValueTask> write, CancellationToken ct)
    {
        var (first, last) = _bitmap.RegionsOf(offset, length);
        var needed = _bitmap.BeginWrite(first, last);
        try
        {
            if (needed is not null)
                await PersistBitmapAsync(needed, ct).ConfigureAwait(false);
            var legs = LiveLegs();
            var tasks = new Task<Exception?>[legs.Count];
            for (var i = 0; i < legs.Count; i++)
                tasks[i] = WriteLegAsync(legs[i], write, offset);
            var errors = await Task.WhenAll(tasks).ConfigureAwait(false);
            if (errors.FirstOrDefault(e => e is BlockDeviceException { Error: BlockError.NotPermitted or BlockError.Invalid }) is { } refused)
                throw refused; // fenced by a reservation, or a bad request: the VM must see it, and no leg is to blame
            if (errors.All(e => e is not null))
                throw new BlockDeviceException(BlockError.Io, $"write failed on every mirror leg: {errors[0]!.Message}", errors[0]);
            await _degrading.ConfigureAwait(false); // a leg failed: the survivor's new epoch must be durable before we acknowledge
        }
        finally
        {
            _bitmap.EndWrite(first, last);
        }
    }

    private async Task<Exception?> WriteLegAsync(Leg leg, Func<IBlockDevice, long, ValueTask> write, long offset)
    {
        try
        {
            await write(leg.Device!, DataOffset + offset).ConfigureAwait(false);
            return null;
        }
        catch (BlockDeviceException e) when (e.Error is BlockError.Io or BlockError.NoSpace)
        {
            await FailLegAsync(leg, $"write failed: {e.Message}").ConfigureAwait(false);
            return e;
        }
        catch (BlockDeviceException e)
        {
            return e;
        }
    }

    private Leg? PickReadLeg()
    {
        lock (_stateLock)
        {
            var inSync = _legs.Where(l => l.State == LegState.InSync).ToArray();
            return inSync.Length == 0 ? null : inSync[(int)((uint)_nextRead++ % (uint)inSync.Length)];
        }
    }

    /// <summary>Legs that receive writes: in sync, or resyncing (so they do not fall further behind).</summary>
    private List<Leg> LiveLegs()
    {
        lock (_stateLock)
            return [.. _legs.Where(l => l.State != LegState.Failed)];
    }

    private void Check(long offset, long length)
    {
        if (!BlockRange.IsValid(offset, length, Size))
            throw BlockRange.Invalid("mirror", offset, length, Size);
    }

    private void Log(string message) => _options.Log?.Invoke($"mirror {MirrorId:N}: {message}");

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_cleaner, _resync).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Stopping: an interrupted resync resumes from the bitmap at the next assembly.
        }
        if (Health == MirrorHealth.Healthy)
        {
            _bitmap.Sweep();
            _bitmap.Sweep();
            await PersistBitmapAsync(_bitmap.UnpersistedBlocks(), CancellationToken.None).ConfigureAwait(false);
        }
        await WriteSuperblocksAsync(clean: true).ConfigureAwait(false);
        foreach (var leg in _legs)
        {
            if (leg.Device is not null)
                await leg.Device.DisposeAsync().ConfigureAwait(false);
        }
        _stopping.Dispose();
    }

    private sealed class Leg(int index, string name, IBlockDevice? device, MirrorSuperblock superblock, LegState state)
    {
        public int Index { get; } = index;
        public string Name { get; } = name;
        public IBlockDevice? Device { get; set; } = device;
        public MirrorSuperblock Superblock { get; set; } = superblock;
        public LegState State { get; set; } = state;
        public string? Reason { get; set; }
    }
}
