using System.Collections.Concurrent;
using XenAoe.Agents;
using XenAoe.Agents.Disk;
using XenAoe.Agents.Host;
using XenAoe.Aoe;
using XenAoe.Control;
using XenAoe.Storage;

namespace XenAoe.Testing;

/// <summary>One call a job made to an agent, numbered in the order they arrived.</summary>
public sealed record AgentCall(int Number, string Server, string Operation, string? Target);

/// <summary>When an injected fault strikes: before the agent acts (nothing happened), or after it acted (its answer is lost).</summary>
public enum FaultTiming
{
    Before,
    After,
}

/// <summary>
/// A cluster of in-memory host and disk daemons, reached by URL like the real ones, that keeps the state a job changes (which
/// host runs which VM, each volume and its reservation) and lets a test fail or interrupt any call: <see cref="Fault"/> sees every
/// call twice, before and after it acts, and may throw. Reservations are enforced as the disk servers do: a host starts a VM only
/// if no other host holds its legs, unless it takes over (the fence). Thread-safe.
/// </summary>
public sealed class FakeAgents : IAgents
{
    private readonly ConcurrentDictionary<string, FakeHost> _hosts = new();
    private readonly ConcurrentDictionary<string, FakeDiskServer> _disks = new();
    private int _calls;

    /// <summary>Runs before and after every call; throw to fail it (a refusal, a dead server, a controller that stops).</summary>
    public Action<AgentCall, FaultTiming>? Fault { get; set; }

    public ConcurrentQueue<AgentCall> Calls { get; } = new();

    /// <summary>Every moment a VM ran on two live hosts at once (checked after each call): a correct job leaves this empty.</summary>
    public ConcurrentQueue<string> SplitBrains { get; } = new();

    /// <summary>Calls made so far; the next is numbered one more.</summary>
    public int CallCount => Volatile.Read(ref _calls);

    public IReadOnlyCollection<FakeHost> Hosts => [.. _hosts.Values];

    public IReadOnlyCollection<FakeDiskServer> DiskServers => [.. _disks.Values];

    public FakeHost AddHost(string name, string mac) => _hosts[$"http://{name}:7300"] = new FakeHost(this, name, $"http://{name}:7300", mac);

    public FakeDiskServer AddDiskServer(string name, ushort shelf) => _disks[$"http://{name}:7200"] = new FakeDiskServer(this, name, $"http://{name}:7200", shelf);

    public IHostAgent Host(string apiUrl) =>
        _hosts.TryGetValue(apiUrl, out var host) ? host : new UnreachableHost(apiUrl);

    public IDiskAgent Disk(string apiUrl) => _disks.GetValueOrDefault(apiUrl) ?? throw new HttpRequestException($"nothing listens at {apiUrl}");

    /// <summary>The hosts where <paramref name="vm"/> runs (incoming copies not counted): a correct cluster has at most one.</summary>
    public IReadOnlyList<string> HostsRunning(string vm) => [.. _hosts.Values.Where(h => h.Role(vm) is VmRole.Running or VmRole.Migrating).Select(h => h.Name)];

    /// <summary>The volume with <paramref name="address"/> on whichever disk server exports it.</summary>
    public (FakeDiskServer Server, VolumeSpec Volume)? Volume(string address) =>
        _disks.Values.Select(d => (d, d.Find(address))).Where(x => x.Item2 is not null).Select(x => ((FakeDiskServer, VolumeSpec)?)(x.d, x.Item2!)).FirstOrDefault();

    internal async Task<T> CallAsync<T>(string server, string operation, string? target, Func<T> act, CancellationToken ct)
    {
        await Task.Yield();
        ct.ThrowIfCancellationRequested();
        var call = new AgentCall(Interlocked.Increment(ref _calls), server, operation, target);
        Calls.Enqueue(call);
        Fault?.Invoke(call, FaultTiming.Before);
        T result;
        lock (this)
        {
            try
            {
                result = act();
            }
            finally
            {
                foreach (var twice in _hosts.Values.Where(h => !h.Dead).SelectMany(h => h.Running()).GroupBy(v => v).Where(g => g.Count() > 1))
                    SplitBrains.Enqueue($"after call {call.Number} ({call.Operation} on {call.Server}), {twice.Key} runs on {twice.Count()} live hosts");
            }
        }
        Fault?.Invoke(call, FaultTiming.After);
        return result;
    }

    internal Task CallAsync(string server, string operation, string? target, Action act, CancellationToken ct) =>
        CallAsync(server, operation, target, () =>
        {
            act();
            return true;
        }, ct);

    /// <summary>Whether <paramref name="host"/> may write the volume at <paramref name="address"/>: its reservation is empty or names the host.</summary>
    internal bool MayWrite(FakeHost host, string address) =>
        Volume(address) is not { } found || found.Volume.Reservation.Count == 0 || found.Volume.Reservation.Contains(host.Mac);

    internal void Reserve(FakeHost host, string address)
    {
        if (Volume(address) is { } found)
            found.Server.SetReservation(found.Volume.Name, [host.Mac]);
    }

    internal FakeHost? HostAt(string apiUrl) => _hosts.GetValueOrDefault(apiUrl);

    private sealed class UnreachableHost(string apiUrl) : IHostAgent
    {
        public string Endpoint => apiUrl;
        public Task<HostInfo> InfoAsync(CancellationToken ct = default) => Fail<HostInfo>();
        public Task<IReadOnlyList<VmStatus>> ListAsync(CancellationToken ct = default) => Fail<IReadOnlyList<VmStatus>>();
        public Task<VmStatus?> GetAsync(string name, CancellationToken ct = default) => Fail<VmStatus?>();
        public Task<VmStatus> StartAsync(StartVmRequest request, CancellationToken ct = default) => Fail<VmStatus>();
        public Task StopAsync(string name, TimeSpan? graceful = null, CancellationToken ct = default) => Fail<bool>();
        public Task KillAsync(string name, CancellationToken ct = default) => Fail<bool>();
        public Task RebootAsync(string name, CancellationToken ct = default) => Fail<bool>();
        public Task<VmStatus> ReplaceLegAsync(string name, string diskId, ReplaceLegRequest request, CancellationToken ct = default) => Fail<VmStatus>();
        public Task<MigrationReport> StartMigrationAsync(string name, StartMigrationRequest request, CancellationToken ct = default) => Fail<MigrationReport>();
        public Task<MigrationReport?> MigrationAsync(string name, CancellationToken ct = default) => Fail<MigrationReport?>();
        public Task<HandoverResponse> HandOverAsync(string name, CancellationToken ct = default) => Fail<HandoverResponse>();
        public Task CancelMigrationAsync(string name, CancellationToken ct = default) => Fail<bool>();
        public Task<FormatDiskResponse> FormatDiskAsync(FormatDiskRequest request, CancellationToken ct = default) => Fail<FormatDiskResponse>();
        public Task<IncomingVmResponse> PrepareIncomingAsync(IncomingVmRequest request, CancellationToken ct = default) => Fail<IncomingVmResponse>();
        public Task ActivateIncomingAsync(string name, CancellationToken ct = default) => Fail<bool>();
        public Task AbortIncomingAsync(string name, CancellationToken ct = default) => Fail<bool>();

        private Task<T> Fail<T>() => Task.FromException<T>(new HttpRequestException($"nothing listens at {apiUrl}"));
    }
}

/// <summary>A host daemon in memory: the VMs it runs and their roles.</summary>
public sealed class FakeHost(FakeAgents cluster, string name, string apiUrl, string mac) : IHostAgent
{
    private readonly Dictionary<string, (VmDefinition Vm, VmRole Role)> _vms = [];
    private readonly Dictionary<string, MigrationReport> _migrations = [];
    private readonly HashSet<string> _received = [];

    public string Name { get; } = name;

    public string Mac { get; } = mac;

    public string Endpoint { get; } = apiUrl;

    /// <summary>A dead host answers nothing (its calls fail as a refused connection would).</summary>
    public bool Dead { get; set; }

    /// <summary>A frozen host (SIGSTOP) accepts calls and never answers them: each waits until its caller gives up.</summary>
    public bool Frozen { get; set; }

    public VmRole? Role(string vm)
    {
        lock (cluster)
            return _vms.TryGetValue(vm, out var entry) ? entry.Role : null;
    }

    public Task<HostInfo> InfoAsync(CancellationToken ct = default) => Call("info", null, () =>
        new HostInfo(Name, Endpoint, 8, 16384, 16384, _vms.Values.Sum(v => v.Vm.MemoryMiB), [new StorageNic("eth1", Mac, 9000)], "fake", _vms.Count), ct);

    public Task<IReadOnlyList<VmStatus>> ListAsync(CancellationToken ct = default) =>
        Call("list", null, () => (IReadOnlyList<VmStatus>)[.. _vms.Values.Select(v => Status(v.Vm, v.Role))], ct);

    public Task<VmStatus?> GetAsync(string name, CancellationToken ct = default) =>
        Call("get", name, () => _vms.TryGetValue(name, out var v) ? Status(v.Vm, v.Role) : null, ct);

    public Task<VmStatus> StartAsync(StartVmRequest request, CancellationToken ct = default) => Call("start", request.Vm.Name, () =>
    {
        var vm = request.Vm;
        if (_vms.ContainsKey(vm.Name))
            throw HostException.Conflict($"VM '{vm.Name}' already exists on {Name}");
        foreach (var address in vm.Disks.SelectMany(d => d.Legs))
        {
            if (!request.TakeOver && !cluster.MayWrite(this, address))
                throw HostException.Conflict($"{address} is reserved by another host");
            cluster.Reserve(this, address);
        }
        _vms[vm.Name] = (vm, VmRole.Running);
        return Status(vm, VmRole.Running);
    }, ct);

    public Task StopAsync(string name, TimeSpan? graceful = null, CancellationToken ct = default) => Call("stop", name, () => Remove(name), ct);

    public Task KillAsync(string name, CancellationToken ct = default) => Call("kill", name, () => Remove(name), ct);

    public Task RebootAsync(string name, CancellationToken ct = default) => Call("reboot", name, () =>
    {
        if (!_vms.ContainsKey(name))
            throw HostException.NotFound(name);
    }, ct);

    public Task<VmStatus> ReplaceLegAsync(string name, string diskId, ReplaceLegRequest request, CancellationToken ct = default) => Call("replace-leg", name, () =>
    {
        var (vm, role) = _vms.TryGetValue(name, out var v) ? v : throw HostException.NotFound(name);
        var replaced = vm with
        {
            Disks = [.. vm.Disks.Select(d => d.Id != diskId ? d : d with { Legs = [.. d.Legs.Select((l, i) => i == request.Index ? request.Address : l)] })],
        };
        cluster.Reserve(this, request.Address);
        _vms[name] = (replaced, role);
        return Status(replaced, role);
    }, ct);

    /// <summary>Starts sending the VM to the incoming copy at the URI; the transfer completes the first time it is asked about (<see cref="MigrationAsync"/>).</summary>
    public Task<MigrationReport> StartMigrationAsync(string name, StartMigrationRequest request, CancellationToken ct = default) => Call("start-migration", name, () =>
    {
        var (vm, role) = _vms.TryGetValue(name, out var v) ? v : throw HostException.NotFound(name);
        if (role == VmRole.Migrating && _migrations[name].MigrationUri == request.MigrationUri)
            return _migrations[name];
        if (role != VmRole.Running)
            throw HostException.Conflict($"VM '{name}' is {role}");
        _vms[name] = (vm, VmRole.Migrating);
        return _migrations[name] = new MigrationReport(request.MigrationUri, MigrationPhase.Transferring, "active", null, null, null, null, null);
    }, ct);

    /// <summary>The migration's report; a transfer under way completes here if its destination still waits, and fails if not.</summary>
    public Task<MigrationReport?> MigrationAsync(string name, CancellationToken ct = default) => Call("migration", name, () =>
    {
        if (!_vms.TryGetValue(name, out var v))
            throw HostException.NotFound(name);
        if (v.Role != VmRole.Migrating || _migrations.GetValueOrDefault(name) is not { Phase: MigrationPhase.Transferring } report)
            return _migrations.GetValueOrDefault(name);
        var destination = cluster.Hosts.FirstOrDefault(h => !h.Dead && h._vms.TryGetValue(name, out var there) && there.Role == VmRole.Incoming && report.MigrationUri == IncomingUri(h));
        destination?._received.Add(name);
        return _migrations[name] = destination is not null
            ? report with { Phase = MigrationPhase.Transferred, HypervisorState = "completed", TotalMs = 1000, DowntimeMs = 50, RamTransferred = 512L << 20 }
            : report with { Phase = MigrationPhase.Failed, HypervisorState = "failed", Error = "the destination does not answer" };
    }, ct);

    public Task<HandoverResponse> HandOverAsync(string name, CancellationToken ct = default) => Call("handover", name, () =>
    {
        if (!_vms.TryGetValue(name, out var v))
            return new HandoverResponse(null, null);
        if (v.Role != VmRole.Migrating || _migrations[name].Phase != MigrationPhase.Transferred)
            throw HostException.Conflict($"VM '{name}' has not finished a transfer: nothing to hand over");
        _vms.Remove(name);
        _migrations.Remove(name);
        return new HandoverResponse(10, 20);
    }, ct);

    public Task CancelMigrationAsync(string name, CancellationToken ct = default) => Call("cancel-migration", name, () =>
    {
        var (vm, role) = _vms.TryGetValue(name, out var v) ? v : throw HostException.NotFound(name);
        if (role != VmRole.Migrating)
            return;
        _vms[name] = (vm, VmRole.Running);
        _migrations[name] = _migrations[name] with { Phase = MigrationPhase.Failed, Error = "cancelled" };
    }, ct);

    public Task<FormatDiskResponse> FormatDiskAsync(FormatDiskRequest request, CancellationToken ct = default) => Call("format", null, () =>
    {
        var volumes = request.Legs.Select(a => cluster.Volume(a) ?? throw new HostException($"no volume answers at {a}", 409)).ToList();
        return new FormatDiskResponse(volumes.Min(v => v.Volume.SizeBytes) - 4096, 0);
    }, ct);

    public Task<IncomingVmResponse> PrepareIncomingAsync(IncomingVmRequest request, CancellationToken ct = default) => Call("prepare-incoming", request.Vm.Name, () =>
    {
        if (_vms.TryGetValue(request.Vm.Name, out var v) && v.Role != VmRole.Incoming)
            throw HostException.Conflict($"VM '{request.Vm.Name}' already exists on {Name}");
        _vms[request.Vm.Name] = (request.Vm, VmRole.Incoming);
        return new IncomingVmResponse(IncomingUri(this));
    }, ct);

    public Task ActivateIncomingAsync(string name, CancellationToken ct = default) => Call("activate-incoming", name, () =>
    {
        var (vm, role) = _vms.TryGetValue(name, out var v) ? v : throw HostException.NotFound(name);
        if (role == VmRole.Incoming)
        {
            if (!_received.Remove(name))
                throw HostException.Conflict($"VM '{name}' on {Name} has received no memory: nothing to activate");
            foreach (var address in vm.Disks.SelectMany(d => d.Legs))
                cluster.Reserve(this, address);
            _vms[name] = (vm, VmRole.Running);
        }
    }, ct);

    public Task AbortIncomingAsync(string name, CancellationToken ct = default) => Call("abort-incoming", name, () =>
    {
        if (!_vms.TryGetValue(name, out var v))
            return;
        if (v.Role != VmRole.Incoming)
            throw HostException.Conflict($"VM '{name}' runs on {Name}: not an incoming migration to abort");
        _vms.Remove(name);
        _received.Remove(name);
    }, ct);

    /// <summary>Puts a VM here directly (the state a test starts from), holding its legs.</summary>
    public void Run(VmDefinition vm)
    {
        lock (cluster)
        {
            _vms[vm.Name] = (vm, VmRole.Running);
            foreach (var address in vm.Disks.SelectMany(d => d.Legs))
                cluster.Reserve(this, address);
        }
    }

    private static string IncomingUri(FakeHost host) => $"tcp:{host.Name}:49152";

    private void Remove(string name)
    {
        if (!_vms.Remove(name))
            throw HostException.NotFound(name);
        _migrations.Remove(name);
    }

    /// <summary>The VMs this host runs (an incoming copy does not, a migration's source does); called under the cluster's lock.</summary>
    internal IEnumerable<string> Running() => _vms.Where(v => v.Value.Role is VmRole.Running or VmRole.Migrating).Select(v => v.Key);

    private async Task<T> Call<T>(string operation, string? target, Func<T> act, CancellationToken ct)
    {
        if (Frozen)
            await Task.Delay(Timeout.Infinite, ct).ConfigureAwait(false);
        return await cluster.CallAsync(Name, operation, target, () => Dead ? throw new HttpRequestException($"{Name} does not answer") : act(), ct).ConfigureAwait(false);
    }

    private Task Call(string operation, string? target, Action act, CancellationToken ct) =>
        Call(operation, target, () =>
        {
            act();
            return true;
        }, ct);

    private VmStatus Status(VmDefinition vm, VmRole role) => Status(vm, role, _migrations.GetValueOrDefault(vm.Name));

    private static VmStatus Status(VmDefinition vm, VmRole role, MigrationReport? migration) => new(vm.Name, vm.Uuid, role, role == VmRole.Incoming ? "paused" : "running", "", 1234, "tcg",
        vm.Cpus, vm.MemoryMiB, null,
        [.. vm.Disks.Select(d => new VmDiskStatus(d.Id, d.Legs, $"{vm.Name}-{d.Id}", role == VmRole.Incoming ? DiskHealth.Standby : DiskHealth.Healthy, 1L << 30, 0, null))],
        vm.Nics, migration);
}

/// <summary>A disk daemon in memory: its volumes, their reservations.</summary>
public sealed class FakeDiskServer(FakeAgents cluster, string name, string apiUrl, ushort shelf) : IDiskAgent
{
    private readonly Dictionary<string, VolumeSpec> _volumes = [];

    public string Name { get; } = name;

    public ushort Shelf { get; } = shelf;

    public string Endpoint { get; } = apiUrl;

    public bool Dead { get; set; }

    public IReadOnlyList<VolumeSpec> Volumes
    {
        get
        {
            lock (cluster)
                return [.. _volumes.Values];
        }
    }

    public Task<IReadOnlyList<VolumeSpec>> ListAsync(CancellationToken ct = default) => Call("list", null, () => (IReadOnlyList<VolumeSpec>)[.. _volumes.Values], ct);

    public Task<VolumeSpec> CreateAsync(VolumeSpec spec, CancellationToken ct = default) => Call("create", spec.Name, () =>
    {
        if (_volumes.ContainsKey(spec.Name) || _volumes.Values.Any(v => v.Shelf == spec.Shelf && v.Slot == spec.Slot))
            throw new StorageException($"volume {spec.Name} or address {spec.Address} exists", StorageError.Conflict);
        return _volumes[spec.Name] = spec;
    }, ct);

    public Task<VolumeSpec> ResizeAsync(string name, long sizeBytes, bool allowShrink, CancellationToken ct = default) =>
        Call("resize", name, () => _volumes[name] = Get(name) with { SizeBytes = sizeBytes }, ct);

    public Task DeleteAsync(string name, bool force, CancellationToken ct = default) => Call("delete", name, () =>
    {
        if (!_volumes.Remove(name))
            throw new StorageException($"no volume {name}", StorageError.NotFound);
        return true;
    }, ct);

    public Task<VolumeSpec> SetReservationAsync(string name, IReadOnlyList<MacAddress> holders, CancellationToken ct = default) =>
        Call("reserve", name, () => SetReservation(name, [.. holders.Select(h => h.ToString())]), ct);

    public Task<VolumeSpec> SetMacMaskAsync(string name, IReadOnlyList<MacAddress> macs, CancellationToken ct = default) =>
        Call("mask", name, () => _volumes[name] = Get(name) with { MacMask = [.. macs.Select(m => m.ToString())] }, ct);

    public Task<VolumeSpec> SetConfigStringAsync(string name, string value, CancellationToken ct = default) =>
        Call("config", name, () => _volumes[name] = Get(name) with { ConfigString = value }, ct);

    public Task<DiskInfo> InfoAsync(CancellationToken ct = default) =>
        Call("info", null, () => new DiskInfo(Name, [new StorageNic("eth1", "52:54:00:ff:00:01", 9000)], Space()), ct);

    public Task<PoolSpace> SpaceAsync(CancellationToken ct = default) => Call("space", null, Space, ct);

    private PoolSpace Space() => new("/fake", 1L << 40, 1L << 40, _volumes.Values.Sum(v => v.SizeBytes));

    public Task<IReadOnlyDictionary<string, long>> CountersAsync(CancellationToken ct = default) =>
        Call("counters", null, () => (IReadOnlyDictionary<string, long>)new Dictionary<string, long>(), ct);

    internal VolumeSpec? Find(string address) => _volumes.Values.FirstOrDefault(v => v.Address == address);

    internal VolumeSpec SetReservation(string name, IReadOnlyList<string> holders) => _volumes[name] = Get(name) with { Reservation = holders };

    private VolumeSpec Get(string name) => _volumes.TryGetValue(name, out var v) ? v : throw new StorageException($"no volume {name}", StorageError.NotFound);

    private Task<T> Call<T>(string operation, string? target, Func<T> act, CancellationToken ct) =>
        cluster.CallAsync(Name, operation, target, () => Dead ? throw new HttpRequestException($"{Name} does not answer") : act(), ct);
}
