using System.Text;
using XenAoe.Aoe;
using XenAoe.Storage;
using XenAoe.Target;

namespace XenAoe.Agents.Disk;

/// <summary>
/// In-process administration of a pool, and of the <see cref="TargetEngine"/> serving it when there is one: changes reach the
/// pool's metadata and the live targets together. Thread-safe. Lock order: a volume's engine lock may take the pool lock
/// (to persist), never the reverse, so pool-locked code never calls into the engine.
/// </summary>
public sealed class DiskAdministrator : IDiskVolumes, IDisposable
{
    /// <summary>How long a replaced or removed store stays open for requests already using it.</summary>
    private static readonly TimeSpan RetireDelay = TimeSpan.FromSeconds(5);

    private readonly StoragePool _pool;
    private readonly object _poolLock = new();

    /// <param name="serve">When set, every volume is exported by a new <see cref="Engine"/> built with these options.</param>
    public DiskAdministrator(StoragePool pool, TargetOptions? serve = null)
    {
        _pool = pool;
        if (serve is null)
            return;
        Engine = new TargetEngine(serve, Persist);
        foreach (var spec in pool.Volumes)
            Engine.Export(spec, pool.OpenData(spec));
    }

    public TargetEngine? Engine { get; }

    /// <summary>Raised after a volume starts being served (created or replaced), so NIC servers can announce it.</summary>
    public event Action<ExportedVolume>? Exported;

    public Task<IReadOnlyList<VolumeSpec>> ListAsync(CancellationToken ct = default)
    {
        lock (_poolLock)
            return Task.FromResult(_pool.Volumes);
    }

    public Task<VolumeSpec> CreateAsync(VolumeSpec spec, CancellationToken ct = default)
    {
        lock (_poolLock)
            spec = _pool.Create(spec);
        if (Engine is not null)
            Exported?.Invoke(Engine.Export(spec, _pool.OpenData(spec)));
        return Task.FromResult(spec);
    }

    public Task<VolumeSpec> ResizeAsync(string name, long sizeBytes, bool allowShrink, CancellationToken ct = default)
    {
        VolumeSpec spec;
        lock (_poolLock)
            spec = _pool.Resize(name, sizeBytes, allowShrink);
        if (Engine?.Find(name) is { } old)
        {
            Exported?.Invoke(Engine.Export(old.Spec with { SizeBytes = spec.SizeBytes }, _pool.OpenData(spec)));
            Retire(old.Store);
        }
        return Task.FromResult(spec);
    }

    public Task DeleteAsync(string name, bool force, CancellationToken ct = default)
    {
        var spec = Current(name);
        if (spec.Reservation.Count != 0 && !force)
            throw new StorageException($"volume '{name}' is reserved by {string.Join(", ", spec.Reservation)} (a host's disk); delete with --force", StorageError.Conflict);
        if (Engine?.Unexport(name) is { } old)
            Retire(old.Store);
        lock (_poolLock)
            _pool.Delete(name);
        return Task.CompletedTask;
    }

    public Task<VolumeSpec> SetReservationAsync(string name, IReadOnlyList<MacAddress> holders, CancellationToken ct = default) =>
        Change(name, (engine, v) => engine.SetReservation(v, holders), spec => spec with { Reservation = [.. holders.Distinct().Select(m => m.ToString())] });

    public Task<VolumeSpec> SetMacMaskAsync(string name, IReadOnlyList<MacAddress> macs, CancellationToken ct = default) =>
        Change(name, (engine, v) => engine.SetMacMask(v, macs), spec => spec with { MacMask = [.. macs.Distinct().Select(m => m.ToString())] });

    public Task<VolumeSpec> SetConfigStringAsync(string name, string value, CancellationToken ct = default)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        if (bytes.Length > AoeProtocol.MaxConfigStringLength)
            throw new StorageException($"a config string holds at most {AoeProtocol.MaxConfigStringLength} bytes");
        return Change(name, (engine, v) => engine.SetConfigString(v, bytes), spec => spec with { ConfigString = Convert.ToBase64String(bytes) });
    }

    public Task<PoolSpace> SpaceAsync(CancellationToken ct = default)
    {
        var drive = new DriveInfo(_pool.Directory);
        long provisioned;
        lock (_poolLock)
            provisioned = _pool.Volumes.Sum(v => v.SizeBytes);
        return Task.FromResult(new PoolSpace(_pool.Directory, drive.AvailableFreeSpace, drive.TotalSize, provisioned));
    }

    public Task<IReadOnlyDictionary<string, long>> CountersAsync(CancellationToken ct = default) =>
        Task.FromResult<IReadOnlyDictionary<string, long>>(Engine is null
            ? new Dictionary<string, long>()
            : Engine.Counters.Snapshot().ToDictionary(c => c.Name, c => c.Read()));

    public void Dispose()
    {
        if (Engine is not null)
        {
            foreach (var volume in Engine.Volumes)
                volume.Store.Dispose();
        }
    }

    private void Persist(VolumeSpec spec)
    {
        lock (_poolLock)
            _pool.Save(spec);
    }

    private VolumeSpec Current(string name)
    {
        if (Engine?.Find(name) is { } exported)
            return exported.Spec;
        lock (_poolLock)
            return _pool.Get(name);
    }

    private Task<VolumeSpec> Change(string name, Action<TargetEngine, ExportedVolume> live, Func<VolumeSpec, VolumeSpec> offline)
    {
        if (Engine?.Find(name) is { } exported)
        {
            live(Engine, exported);
            return Task.FromResult(exported.Spec);
        }
        lock (_poolLock)
        {
            var spec = offline(_pool.Get(name));
            if (spec.MacMask.Count > TargetEngine.MaxMacList || spec.Reservation.Count > TargetEngine.MaxMacList)
                throw new StorageException($"at most {TargetEngine.MaxMacList} MAC addresses fit a list");
            _pool.Save(spec);
            return Task.FromResult(spec);
        }
    }

    private static void Retire(BackingStore store) =>
        _ = Task.Delay(RetireDelay).ContinueWith(_ => store.Dispose(), TaskScheduler.Default);
}
