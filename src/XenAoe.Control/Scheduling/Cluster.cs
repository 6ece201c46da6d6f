using System.Diagnostics.CodeAnalysis;

namespace XenAoe.Control.Scheduling;

/// <summary>
/// The scheduler's working model of a cluster: CPU servers, disk servers and VMs, indexed, with per-host used RAM, vCPUs and
/// VM counts kept up to date as VMs are added, moved and removed (so a placement never re-sums the VMs).
/// Hosts and disk servers are ordered by name (ordinal), which is how every tie is broken. Not thread-safe.
/// </summary>
public sealed class Cluster
{
    internal readonly HostCapacity[] Hosts;
    internal readonly ServerState[] HostStates;
    internal readonly long[] UsableRam;
    internal readonly int[] VcpuCapacity;
    internal readonly long[] UsedRam;
    internal readonly int[] UsedVcpus;
    internal readonly List<int>[] HostVms;

    internal readonly DiskServerCapacity[] DiskServers;
    internal readonly ServerState[] DiskStates;
    internal readonly long[] DiskFree;

    internal readonly List<VmDemand?> Vms;
    internal readonly List<int> VmHost;

    private readonly Dictionary<string, int> _hostIndex;
    private readonly Dictionary<string, int> _diskIndex;
    private readonly Dictionary<string, int> _vmIndex;
    private long _maxVmRam;
    private int _maxVmVcpus;
    private bool _maxShapeStale;

    /// <summary>Builds the model; every VM with a host must name one of <paramref name="hosts"/>.</summary>
    public Cluster(
        IEnumerable<HostCapacity> hosts,
        IEnumerable<DiskServerCapacity>? diskServers = null,
        IEnumerable<VmDemand>? vms = null,
        SchedulerOptions? options = null)
    {
        Options = options ?? new SchedulerOptions();
        if (!(Options.CpuOvercommit > 0))
            throw new ArgumentOutOfRangeException(nameof(options), "CpuOvercommit must be positive.");

        Hosts = [.. hosts];
        Array.Sort(Hosts, static (a, b) => string.CompareOrdinal(a.Name, b.Name));
        var n = Hosts.Length;
        HostStates = new ServerState[n];
        UsableRam = new long[n];
        VcpuCapacity = new int[n];
        UsedRam = new long[n];
        UsedVcpus = new int[n];
        HostVms = new List<int>[n];
        _hostIndex = new Dictionary<string, int>(n, StringComparer.Ordinal);
        for (var i = 0; i < n; i++)
        {
            var h = Hosts[i];
            if (!_hostIndex.TryAdd(h.Name, i))
                throw new ArgumentException($"Host {h.Name} is listed twice.", nameof(hosts));
            HostStates[i] = h.State;
            UsableRam[i] = Math.Max(0, h.RamMiB - h.ReservedRamMiB);
            VcpuCapacity[i] = (int)Math.Floor(h.Cpus * Options.CpuOvercommit);
            HostVms[i] = [];
        }

        DiskServers = [.. diskServers ?? []];
        Array.Sort(DiskServers, static (a, b) => string.CompareOrdinal(a.Name, b.Name));
        DiskStates = new ServerState[DiskServers.Length];
        DiskFree = new long[DiskServers.Length];
        _diskIndex = new Dictionary<string, int>(DiskServers.Length, StringComparer.Ordinal);
        for (var i = 0; i < DiskServers.Length; i++)
        {
            if (!_diskIndex.TryAdd(DiskServers[i].Name, i))
                throw new ArgumentException($"Disk server {DiskServers[i].Name} is listed twice.", nameof(diskServers));
            DiskStates[i] = DiskServers[i].State;
            DiskFree[i] = DiskServers[i].FreeBytes;
        }

        Vms = [];
        VmHost = [];
        _vmIndex = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var vm in vms ?? [])
            AddVm(vm);
    }

    private Cluster(Cluster other)
    {
        Options = other.Options;
        Hosts = other.Hosts;
        HostStates = (ServerState[])other.HostStates.Clone();
        UsableRam = other.UsableRam;
        VcpuCapacity = other.VcpuCapacity;
        UsedRam = (long[])other.UsedRam.Clone();
        UsedVcpus = (int[])other.UsedVcpus.Clone();
        HostVms = new List<int>[other.HostVms.Length];
        for (var i = 0; i < HostVms.Length; i++)
            HostVms[i] = [.. other.HostVms[i]];
        DiskServers = other.DiskServers;
        DiskStates = (ServerState[])other.DiskStates.Clone();
        DiskFree = (long[])other.DiskFree.Clone();
        Vms = [.. other.Vms];
        VmHost = [.. other.VmHost];
        _hostIndex = other._hostIndex;
        _diskIndex = other._diskIndex;
        _vmIndex = new Dictionary<string, int>(other._vmIndex, StringComparer.Ordinal);
        _maxVmRam = other._maxVmRam;
        _maxVmVcpus = other._maxVmVcpus;
        _maxShapeStale = other._maxShapeStale;
    }

    /// <summary>The placement policy this model was built with.</summary>
    public SchedulerOptions Options { get; }

    /// <summary>Number of CPU servers.</summary>
    public int HostCount => Hosts.Length;

    /// <summary>An independent copy (for what-if planning); the immutable inputs are shared.</summary>
    public Cluster Clone() => new(this);

    /// <summary>Adds a VM; one with a <see cref="VmDemand.Host"/> uses that host's RAM and vCPUs from now on.</summary>
    public void AddVm(VmDemand vm)
    {
        ArgumentNullException.ThrowIfNull(vm);
        if (vm.RamMiB < 0 || vm.Vcpus < 0)
            throw new ArgumentOutOfRangeException(nameof(vm), $"VM {vm.Name} has a negative size.");
        var host = vm.Host is null ? -1 : HostIndexOrThrow(vm.Host);
        var index = Vms.Count;
        if (!_vmIndex.TryAdd(vm.Name, index))
            throw new ArgumentException($"VM {vm.Name} exists already.", nameof(vm));
        Vms.Add(vm);
        VmHost.Add(-1);
        if (host >= 0)
            Assign(index, host);
        if (vm.RamMiB > _maxVmRam)
            _maxVmRam = vm.RamMiB;
        if (vm.Vcpus > _maxVmVcpus)
            _maxVmVcpus = vm.Vcpus;
    }

    /// <summary>Removes a VM and gives back what it used on its host. Returns false when there is no such VM.</summary>
    public bool RemoveVm(string name)
    {
        if (!_vmIndex.Remove(name, out var index))
            return false;
        var vm = Vms[index]!;
        if (VmHost[index] >= 0)
            Unassign(index);
        Vms[index] = null;
        if (vm.RamMiB >= _maxVmRam || vm.Vcpus >= _maxVmVcpus)
            _maxShapeStale = true;
        return true;
    }

    /// <summary>Moves a VM to another CPU server (the result of a migration or restart).</summary>
    public void MoveVm(string name, string toHost)
    {
        var index = VmIndexOrThrow(name);
        var host = HostIndexOrThrow(toHost);
        if (VmHost[index] >= 0)
            Unassign(index);
        Assign(index, host);
        Vms[index] = Vms[index]! with { Host = Hosts[host].Name };
    }

    /// <summary>Marks a CPU server up, down or draining.</summary>
    public void SetHostState(string host, ServerState state) => HostStates[HostIndexOrThrow(host)] = state;

    /// <summary>Marks a disk server up, down or draining.</summary>
    public void SetDiskServerState(string server, ServerState state) => DiskStates[DiskIndexOrThrow(server)] = state;

    /// <summary>Takes <paramref name="bytes"/> from a disk server's free space (a leg was created there).</summary>
    public void ReserveDiskSpace(string server, long bytes) => DiskFree[DiskIndexOrThrow(server)] -= bytes;

    /// <summary>Takes the size of both legs of a placed mirror from their disk servers.</summary>
    public void ReserveMirror(MirrorLegsPlacement legs, long sizeBytes)
    {
        if (legs.First is null || legs.Second is null)
            throw new ArgumentException("The mirror was not placed.", nameof(legs));
        ReserveDiskSpace(legs.First, sizeBytes);
        ReserveDiskSpace(legs.Second, sizeBytes);
    }

    /// <summary>The VM of that name, or null.</summary>
    public VmDemand? FindVm(string name) => _vmIndex.TryGetValue(name, out var i) ? Vms[i] : null;

    /// <summary>The VMs placed on a host, in the order they were added.</summary>
    public IReadOnlyList<VmDemand> VmsOn(string host)
    {
        var list = HostVms[HostIndexOrThrow(host)];
        var result = new VmDemand[list.Count];
        for (var i = 0; i < result.Length; i++)
            result[i] = Vms[list[i]]!;
        return result;
    }

    /// <summary>What every host has left, in name order.</summary>
    public IReadOnlyList<HostHeadroom> Headroom()
    {
        var result = new HostHeadroom[Hosts.Length];
        for (var i = 0; i < result.Length; i++)
            result[i] = new HostHeadroom(Hosts[i].Name, HostStates[i], HostVms[i].Count, FreeRam(i), FreeVcpus(i));
        return result;
    }

    /// <summary>Headroom of one host.</summary>
    public HostHeadroom Headroom(string host)
    {
        var i = HostIndexOrThrow(host);
        return new HostHeadroom(Hosts[i].Name, HostStates[i], HostVms[i].Count, FreeRam(i), FreeVcpus(i));
    }

    /// <summary>Free bytes of a disk server as the model counts them.</summary>
    public long DiskServerFree(string server) => DiskFree[DiskIndexOrThrow(server)];

    internal long FreeRam(int host) => UsableRam[host] - UsedRam[host];

    internal int FreeVcpus(int host) => VcpuCapacity[host] - UsedVcpus[host];

    internal int VmIndexOf(string name) => VmIndexOrThrow(name);

    /// <summary>Adds a VM that has no name in the index (capacity probes), placed on <paramref name="host"/>.</summary>
    internal void AddProbe(VmDemand vm, int host)
    {
        Vms.Add(vm);
        VmHost.Add(-1);
        Assign(Vms.Count - 1, host);
        _maxVmRam = Math.Max(_maxVmRam, vm.RamMiB);
        _maxVmVcpus = Math.Max(_maxVmVcpus, vm.Vcpus);
    }

    internal bool TryHostIndex(string name, out int index) => _hostIndex.TryGetValue(name, out index);

    /// <summary>The componentwise largest VM (RAM, vCPUs) among placed and unplaced VMs; at least 1 of each.</summary>
    internal (long Ram, int Vcpus) MaxVmShape()
    {
        if (_maxShapeStale)
        {
            long ram = 0;
            var vcpus = 0;
            foreach (var vm in Vms)
            {
                if (vm is null)
                    continue;
                ram = Math.Max(ram, vm.RamMiB);
                vcpus = Math.Max(vcpus, vm.Vcpus);
            }
            _maxVmRam = ram;
            _maxVmVcpus = vcpus;
            _maxShapeStale = false;
        }
        return (Math.Max(1, _maxVmRam), Math.Max(1, _maxVmVcpus));
    }

    internal int HostIndexOrThrow(string name)
        => _hostIndex.TryGetValue(name, out var i) ? i : ThrowUnknown<int>("host", name);

    private int DiskIndexOrThrow(string name)
        => _diskIndex.TryGetValue(name, out var i) ? i : ThrowUnknown<int>("disk server", name);

    private int VmIndexOrThrow(string name)
        => _vmIndex.TryGetValue(name, out var i) ? i : ThrowUnknown<int>("VM", name);

    internal void Assign(int vm, int host)
    {
        var v = Vms[vm]!;
        VmHost[vm] = host;
        UsedRam[host] += v.RamMiB;
        UsedVcpus[host] += v.Vcpus;
        HostVms[host].Add(vm);
    }

    internal void Unassign(int vm)
    {
        var v = Vms[vm]!;
        var host = VmHost[vm];
        UsedRam[host] -= v.RamMiB;
        UsedVcpus[host] -= v.Vcpus;
        HostVms[host].Remove(vm);
        VmHost[vm] = -1;
    }

    [DoesNotReturn]
    private static T ThrowUnknown<T>(string kind, string name) => throw new KeyNotFoundException($"No {kind} named {name}.");
}
