using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using XenAoe.Aoe;
using XenAoe.Block;
using XenAoe.Hypervisors;
using XenAoe.Os;
using XenAoe.Mirror;
using XenAoe.Nbd;

namespace XenAoe.Agents.Host;

/// <summary>
/// The VMs of one CPU server: for each, its disks' data paths (AoE initiator, mirror, NBD export), its TAP devices, and the
/// hypervisor process; and both halves of a live migration. Operations on one VM are serialized; different VMs proceed
/// in parallel.
/// </summary>
public sealed partial class VmManager : IAsyncDisposable
{
    private readonly HostDaemonOptions _options;
    private readonly IHypervisorDriver _driver;
    private readonly NbdServer _nbd;
    private readonly ILogger _log;
    private readonly ConcurrentDictionary<string, HostedVm> _vms = new(StringComparer.Ordinal);

    public VmManager(HostDaemonOptions options, IHypervisorDriver driver, NbdServer nbd, ILogger<VmManager> log)
    {
        _options = options;
        _driver = driver;
        _nbd = nbd;
        _log = log;
    }

    public HostInfo Info()
    {
        var (total, available) = Memory();
        return new HostInfo(_options.Name, _options.ApiUrl, Environment.ProcessorCount, total, available,
            _vms.Values.Sum(v => v.Definition.MemoryMiB), StorageNic.Read(_options.StorageInterfaces), "qemu", _vms.Count);
    }

    public async Task<IReadOnlyList<VmStatus>> ListAsync(CancellationToken ct)
    {
        var list = new List<VmStatus>();
        foreach (var vm in _vms.Values.OrderBy(v => v.Definition.Name, StringComparer.Ordinal))
            list.Add(await StatusAsync(vm, ct).ConfigureAwait(false));
        return list;
    }

    public async Task<VmStatus> GetAsync(string name, CancellationToken ct) => await StatusAsync(Find(name), ct).ConfigureAwait(false);

    /// <summary>Assembles the VM's disks (taking their reservations), creates its TAPs and starts it.</summary>
    public async Task<VmStatus> StartAsync(StartVmRequest request, CancellationToken ct)
    {
        var definition = request.Vm;
        Check(definition);
        // Gated before anyone can see it, and never left behind: a request cancelled here must not leave a VM nobody starts.
        var vm = new HostedVm(definition, VmRole.Running);
        vm.Gate.Wait(CancellationToken.None);
        if (!_vms.TryAdd(definition.Name, vm))
        {
            vm.Gate.Release();
            throw HostException.Conflict($"VM '{definition.Name}' already exists on {_options.Name}");
        }
        try
        {
            foreach (var disk in definition.Disks)
            {
                var path = await MirrorDataPath.OpenAsync(DataPathOptions(definition, disk, request.TakeOver, request.AllowDegraded), ct).ConfigureAwait(false);
                var hosted = new HostedDisk(disk, ExportName(definition, disk)) { Path = path };
                vm.Disks.Add(hosted);
                _nbd.AddExport(hosted.Export, path.Mirror, $"{definition.Name} {disk.Id}");
            }
            await CreateTapsAsync(vm, ct).ConfigureAwait(false);
            await _driver.StartAsync(Spec(definition), ct).ConfigureAwait(false);
            Log.VmStarted(_log, definition.Name);
            return await StatusAsync(vm, ct).ConfigureAwait(false);
        }
        catch
        {
            await TearDownAsync(vm).ConfigureAwait(false);
            _vms.TryRemove(definition.Name, out _);
            throw;
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    /// <summary>
    /// Formats two fresh volumes as a new mirror (both legs known identical: new sparse volumes) and writes the image onto it
    /// through the mirror, so both disk servers get it. The mirror is closed again: a VM assembles it when it starts.
    /// </summary>
    public async Task<FormatDiskResponse> FormatDiskAsync(FormatDiskRequest request, CancellationToken ct)
    {
        if (request.Legs.Count != 2 || request.Legs.Any(l => !AoeAddress.TryParse(l, out _)) || request.Legs[0] == request.Legs[1])
            throw new HostException("a disk needs two distinct AoE leg addresses such as e1.0 and e2.0");
        if (request.ImagePath is { } image && !File.Exists(image))
            throw new HostException($"no image {image} on {_options.Name}");
        var options = new MirrorDataPathOptions
        {
            Interfaces = _options.StorageInterfaces,
            Legs = [.. request.Legs.Select(AoeAddress.Parse)],
            DeviceTimeout = _options.LegTimeout,
            Log = message => Log.DataPath(_log, "format", string.Join("+", request.Legs), message),
        };
        await using var path = await MirrorDataPath.CreateAsync(options, assumeClean: true, ct).ConfigureAwait(false);
        var written = request.ImagePath is { } file ? await BlockImage.WriteAsync(file, path.Mirror, ct: ct).ConfigureAwait(false) : 0;
        return new FormatDiskResponse(path.Mirror.Size, written);
    }

    /// <summary>Powers the guest off (forced after the grace time), closes its disks cleanly and forgets it.</summary>
    public async Task<StopOutcome> StopAsync(string name, TimeSpan? graceful, CancellationToken ct)
    {
        var vm = await EnterAsync(name, ct).ConfigureAwait(false);
        try
        {
            if (vm.Role != VmRole.Running)
                throw HostException.Conflict($"VM '{name}' is {vm.Role.ToString().ToLowerInvariant()}: wait for its migration to end");
            var outcome = await _driver.StopAsync(name, graceful ?? _options.StopGrace, ct).ConfigureAwait(false);
            await TearDownAsync(vm).ConfigureAwait(false);
            _vms.TryRemove(name, out _);
            Log.VmStopped(_log, name, outcome.ToString());
            return outcome;
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    /// <summary>Forces the VM off at once, then closes its disks and forgets it.</summary>
    public async Task KillAsync(string name, CancellationToken ct)
    {
        var vm = await EnterAsync(name, ct).ConfigureAwait(false);
        try
        {
            await _driver.KillAsync(name, ct).ConfigureAwait(false);
            await TearDownAsync(vm).ConfigureAwait(false);
            _vms.TryRemove(name, out _);
            Log.VmStopped(_log, name, "killed");
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    /// <summary>
    /// Replaces a leg of a running VM's disk by the volume at <see cref="ReplaceLegRequest.Address"/>: returns once the new
    /// leg is in the mirror; the full copy onto it runs in the background (its progress is in the VM's status).
    /// </summary>
    public async Task<VmStatus> ReplaceLegAsync(string name, string diskId, ReplaceLegRequest request, CancellationToken ct)
    {
        if (request.Index is not (0 or 1))
            throw new HostException($"index must be 0 or 1, not {request.Index}");
        if (!AoeAddress.TryParse(request.Address, out var address))
            throw new HostException($"'{request.Address}' is not an AoE address such as e3.0");
        var vm = await EnterAsync(name, ct).ConfigureAwait(false);
        try
        {
            if (vm.Role != VmRole.Running)
                throw HostException.Conflict($"VM '{name}' is {vm.Role.ToString().ToLowerInvariant()}: wait for its migration to end");
            var disk = vm.Disks.FirstOrDefault(d => d.Definition.Id == diskId)
                ?? throw new HostException($"VM '{name}' has no disk '{diskId}'", 404);
            var path = disk.Path ?? throw HostException.Conflict($"VM '{name}' disk '{diskId}' is not assembled");
            if (path.Legs.Contains(address))
                throw HostException.Conflict($"{address} is already a leg of VM '{name}' disk '{diskId}'");
            var old = path.Legs[request.Index];
            await path.ReplaceLegAsync(request.Index, address, ct).ConfigureAwait(false);
            disk.Definition = disk.Definition with { Legs = [.. path.Legs.Select(l => l.ToString())] };
            vm.Definition = vm.Definition with { Disks = [.. vm.Disks.Select(d => d.Definition)] };
            Log.DataPath(_log, name, diskId, $"leg {request.Index} {old} replaced by {address}: full copy under way");
            return await StatusAsync(vm, ct).ConfigureAwait(false);
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    public async Task RebootAsync(string name, CancellationToken ct)
    {
        var vm = Find(name);
        if (vm.Role != VmRole.Running)
            throw HostException.Conflict($"VM '{name}' is {vm.Role.ToString().ToLowerInvariant()}");
        await _driver.RebootAsync(name, ct).ConfigureAwait(false);
    }

    private static void Check(VmDefinition definition)
    {
        try
        {
            Spec(definition, "/").Validate();
        }
        catch (ArgumentException e)
        {
            throw new HostException(e.Message, inner: e);
        }
        foreach (var disk in definition.Disks)
        {
            if (disk.Legs.Count != 2 || disk.Legs.Any(l => !AoeAddress.TryParse(l, out _)) || disk.Legs[0] == disk.Legs[1])
                throw new HostException($"VM {definition.Name}: disk {disk.Id} needs two distinct AoE leg addresses such as e1.0 and e2.0");
        }
    }

    private HostedVm Find(string name) => _vms.TryGetValue(name, out var vm) ? vm : throw HostException.NotFound(name);

    /// <summary>The VM with its gate held (release it when done); not found when unknown, or gone while this call waited.</summary>
    private async Task<HostedVm> EnterAsync(string name, CancellationToken ct) =>
        await TryEnterAsync(name, ct).ConfigureAwait(false) ?? throw HostException.NotFound(name);

    /// <summary>
    /// The VM with its gate held, or null when this host does not hold it: unknown, or gone while this call waited for the gate
    /// (stopped, handed over, aborted by the call that held it), so a step repeated after another ended it acts on nothing stale.
    /// </summary>
    private async Task<HostedVm?> TryEnterAsync(string name, CancellationToken ct)
    {
        if (!_vms.TryGetValue(name, out var vm))
            return null;
        await vm.Gate.WaitAsync(ct).ConfigureAwait(false);
        if (_vms.TryGetValue(name, out var now) && now == vm)
            return vm;
        vm.Gate.Release();
        return null;
    }

    private MirrorDataPathOptions DataPathOptions(VmDefinition vm, VmDiskDefinition disk, bool takeOver, bool allowDegraded) => new()
    {
        Interfaces = _options.StorageInterfaces,
        Legs = [.. disk.Legs.Select(AoeAddress.Parse)],
        TakeOver = takeOver,
        AllowDegraded = allowDegraded,
        DeviceTimeout = _options.LegTimeout,
        Log = message => Log.DataPath(_log, vm.Name, disk.Id, message),
    };

    private static string ExportName(VmDefinition vm, VmDiskDefinition disk) => $"{vm.Name}-{disk.Id}";

    /// <summary>Interface names have at most 15 bytes: a hash of VM and NIC keeps them short, stable and distinct.</summary>
    private static string TapName(VmDefinition vm, VmNicDefinition nic)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"{vm.Name}/{nic.Id}"));
        return "xv" + Convert.ToHexStringLower(hash.AsSpan(0, 5));
    }

    private VmSpec Spec(VmDefinition vm) => Spec(vm, _options.NbdSocketPath, _options.Listen?.Address.ToString());

    private static VmSpec Spec(VmDefinition vm, string nbdSocket, string? vncHost = null) => new(
        vm.Name, vm.Uuid, vm.Cpus, vm.MemoryMiB, vm.Boot,
        [.. vm.Disks.Select(d => new VmDisk(d.Id, nbdSocket, ExportName(vm, d), d.ReadOnly))],
        [.. vm.Nics.Select(n => new VmNic(n.Id, TapName(vm, n), n.Mac))],
        vm.VncDisplay is { } display && vncHost is not null ? new VncListen(vncHost, display) : null);

    private async Task CreateTapsAsync(HostedVm vm, CancellationToken ct)
    {
        foreach (var nic in vm.Definition.Nics)
        {
            var tap = TapName(vm.Definition, nic);
            await IpAsync(ct, "tuntap", "add", "dev", tap, "mode", "tap").ConfigureAwait(false);
            vm.Taps.Add(tap);
            if (_options.VmBridge is { } bridge)
                await IpAsync(ct, "link", "set", tap, "mtu", $"{_options.VmMtu}", "master", bridge, "up").ConfigureAwait(false);
            else
                await IpAsync(ct, "link", "set", tap, "mtu", $"{_options.VmMtu}", "up").ConfigureAwait(false);
        }
    }

    private static async Task IpAsync(CancellationToken ct, params string[] args)
    {
        var result = await Command.RunAsync("ip", args, TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
        if (!result.Succeeded)
            throw new HostException($"`{result.CommandLine}` failed: {result.StdErr.Trim()}", 500);
    }

    /// <summary>Withdraws the exports, closes the data paths (a clean mirror close) and deletes the TAPs. Never throws.</summary>
    private async Task TearDownAsync(HostedVm vm)
    {
        foreach (var disk in vm.Disks)
        {
            await _nbd.RemoveExportAsync(disk.Export).ConfigureAwait(false);
            try
            {
                if (disk.Path is not null)
                    await disk.Path.DisposeAsync().ConfigureAwait(false);
                if (disk.Standby is not null)
                    await disk.Standby.DisposeAsync().ConfigureAwait(false);
                if (disk.Pending is not null)
                    await disk.Pending.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception e)
            {
                // The disks are being let go; a leg that fails to close is resynced from its bitmap at the next assembly.
                Log.TearDownFailed(_log, vm.Definition.Name, disk.Definition.Id, e);
            }
        }
        vm.Disks.Clear();
        foreach (var tap in vm.Taps)
        {
            var result = await Command.RunAsync("ip", ["link", "delete", tap], TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            if (!result.Succeeded)
                Log.TearDownFailed(_log, vm.Definition.Name, tap, new IOException(result.StdErr.Trim()));
        }
        vm.Taps.Clear();
    }

    private async Task<VmStatus> StatusAsync(HostedVm vm, CancellationToken ct)
    {
        var migration = await RefreshMigrationAsync(vm, ct).ConfigureAwait(false);
        var info = await _driver.InfoAsync(vm.Definition.Name, ct).ConfigureAwait(false);
        var disks = vm.Disks.ToArray().Select(d =>
        {
            if (d.Path is { } path)
            {
                var status = path.Mirror.Status;
                var detail = string.Join("; ", status.Legs.Where(l => l.State != LegState.InSync).Select(l => $"{l.Name} {l.State.ToString().ToLowerInvariant()}{(l.Reason is null ? "" : $": {l.Reason}")}"));
                var paths = path.LegPaths.SelectMany((legPaths, i) => legPaths.Select(p =>
                    new VmDiskPath(path.Legs[i].ToString(), p.Interface, p.State switch
                    {
                        Initiator.AoePathState.Up => PathState.Up,
                        Initiator.AoePathState.Suspect => PathState.Suspect,
                        _ => PathState.Down,
                    }, p.Retransmissions))).ToArray();
                return new VmDiskStatus(d.Definition.Id, d.Definition.Legs, d.Export, Health(status.Health), status.Size, status.DirtyRegions,
                    detail.Length == 0 ? null : detail, status.ResyncDoneBytes, status.ResyncTotalBytes, paths);
            }
            return new VmDiskStatus(d.Definition.Id, d.Definition.Legs, d.Export, DiskHealth.Standby, d.Pending?.Size ?? 0, 0, "waiting for the migration source to hand over");
        }).ToArray();
        var d = vm.Definition;
        return new VmStatus(d.Name, d.Uuid, vm.Role, info?.State.ToString().ToLowerInvariant() ?? "unknown",
            info?.StateDetail ?? "the hypervisor does not know this VM", info?.Pid, info?.Accelerator.ToString().ToLowerInvariant() ?? "unknown",
            d.Cpus, d.MemoryMiB, info?.Consoles, disks, d.Nics, migration);
    }

    private static DiskHealth Health(MirrorHealth health) => health switch
    {
        MirrorHealth.Healthy => DiskHealth.Healthy,
        MirrorHealth.Resyncing => DiskHealth.Resyncing,
        _ => DiskHealth.Degraded,
    };

    private static (long Total, long Available) Memory()
    {
        long total = 0, available = 0;
        foreach (var line in File.ReadLines("/proc/meminfo"))
        {
            if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
                total = Kib(line) / 1024;
            else if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                available = Kib(line) / 1024;
        }
        return (total, available);

        static long Kib(string line) => long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>A TCP port free now on the migration address; QEMU binds it a moment later.</summary>
    private static int FreePort(IPAddress address)
    {
        using var probe = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(address, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    public async ValueTask DisposeAsync()
    {
        // The daemon is stopping: VMs keep running under the hypervisor, but their disks' data paths live in this process,
        // so they are closed cleanly (clean superblocks) rather than left to a crash resync.
        foreach (var vm in _vms.Values)
            await TearDownAsync(vm).ConfigureAwait(false);
        _vms.Clear();
    }

    private sealed class HostedVm(VmDefinition definition, VmRole role)
    {
        /// <summary>Changes when a leg is replaced, so a later migration hands the new legs to its destination.</summary>
        public VmDefinition Definition { get; set; } = definition;
        public VmRole Role { get; set; } = role;
        public SemaphoreSlim Gate { get; } = new(1, 1);
        public List<HostedDisk> Disks { get; } = [];
        public List<string> Taps { get; } = [];
        public MigrationReport? Migration { get; set; }

        /// <summary>An incoming copy's migration address, answered again to a repeated prepare.</summary>
        public string? IncomingUri { get; set; }
    }

    private sealed class HostedDisk(VmDiskDefinition definition, string export)
    {
        public VmDiskDefinition Definition { get; set; } = definition;
        public string Export { get; } = export;
        public MirrorDataPath? Path { get; set; }
        public MirrorDataPathStandby? Standby { get; set; }
        public PendingBlockDevice? Pending { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "VM {Vm} started")]
        public static partial void VmStarted(ILogger logger, string vm);

        [LoggerMessage(2, LogLevel.Information, "VM {Vm} stopped ({How})")]
        public static partial void VmStopped(ILogger logger, string vm, string how);

        [LoggerMessage(3, LogLevel.Information, "VM {Vm} disk {Disk}: {Message}")]
        public static partial void DataPath(ILogger logger, string vm, string disk, string message);

        [LoggerMessage(4, LogLevel.Warning, "VM {Vm}: could not release {What}")]
        public static partial void TearDownFailed(ILogger logger, string vm, string what, Exception exception);

        [LoggerMessage(5, LogLevel.Information, "VM {Vm}: migration {Phase}: {Detail}")]
        public static partial void Migration(ILogger logger, string vm, string phase, string detail);
    }
}
