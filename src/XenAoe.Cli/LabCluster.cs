using System.Diagnostics;
using System.Globalization;
using System.Net;
using XenAoe.Agents.Disk;
using XenAoe.Agents.Host;
using XenAoe.Hypervisors;
using XenAoe.Lab;
using XenAoe.Lab.Cluster;
using XenAoe.Lab.Guests;
using XenAoe.Storage;

namespace XenAoe.Cli;

/// <summary>
/// <c>xenaoe lab up</c> past the network: the disk and host daemons in their namespaces, the guest image, the first VMs'
/// mirrored root volumes, and the VMs booted from them. Every daemon is started through <see cref="LabProcesses"/>, so
/// <c>lab down</c> finds it even after a crash.
/// </summary>
internal sealed class LabCluster(LabPlan plan, TextWriter log)
{
    public const int DiskApiPort = 7200;
    public const int HostApiPort = 7300;
    public const long RootVolumeBytes = 128L << 20;
    private static readonly TimeSpan DaemonStartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan BootTimeout = TimeSpan.FromMinutes(3);

    private readonly LabProcesses _processes = new(plan.StateDirectory);
    private int _step;
    private int _steps;

    public static string HostStateDirectory(string labState, LabServer cpu) => Path.Combine(labState, "hosts", cpu.Name);

    public static string PoolDirectory(string labState, LabServer disk) => Path.Combine(labState, "pools", disk.Name);

    /// <summary>VM n is .(40+n) on the VM subnet (servers use .1 to .29; the subnet is at least a /26).</summary>
    public static IPAddress VmAddress(LabPlan plan, int vm) => new([.. plan.VmSubnet.BaseAddress.GetAddressBytes()[..3], (byte)(40 + vm)]);

    public static string VmName(int vm) => $"vm{vm}";

    public static string HostApiUrl(LabPlan plan, LabServer cpu) => $"http://{LabPlan.AddressOf(plan.ManagementSubnet, cpu)}:{HostApiPort}";

    /// <summary>Builds everything and boots <paramref name="vms"/> VMs; returns how long each took to answer over HTTP.</summary>
    public async Task<IReadOnlyList<(string Vm, IPAddress Address, TimeSpan Boot, long Counter)>> UpAsync(int vms, CancellationToken ct)
    {
        Root.Require("xenaoe lab up");
        var clock = Stopwatch.StartNew();
        _steps = 4 + plan.DiskServers + plan.CpuServers + 2 * vms;

        Step("guest image (Debian kernel + busybox, built once and cached)");
        var image = await VmGuestImage.EnsureAsync(new Progress<string>(m => Detail(m)), ct);
        Detail(image.BuildTime is { } built ? $"built in {built.TotalSeconds:0.0} s" : "from the cache");

        Step($"network: {plan.DiskServers} disk servers, {plan.CpuServers} CPU servers, switches san0/san1 (MTU {plan.StorageMtu}), mgmt, vmnet");
        await LabNetwork.UpAsync(plan, new Progress<LabProgress>(p => Detail(p.Message)), ct);

        Step("jumbo frames end to end on both storage switches");
        var jumbo = await LabNetwork.CheckJumboFramesAsync(plan.StateDirectory, ct);
        if (jumbo.Passed)
            Detail($"{jumbo.Paths.Count} paths carry {jumbo.Mtu}-byte frames");
        foreach (var path in jumbo.Paths.Where(p => !p.Passed))
            log.WriteLine($"  warning: {path.Switch} {path.From} -> {path.To} cannot carry {jumbo.Mtu}-byte frames (largest MTU {path.LargestMtu}): {path.Detail}");

        Step("volumes for the VMs' root disks (one leg on each of disk1 and disk2)");
        foreach (var disk in plan.Disks.Take(2))
        {
            using var pool = StoragePool.Open(CreateDirectory(PoolDirectory(plan.StateDirectory, disk)));
            for (var vm = 1; vm <= vms; vm++)
                pool.Create(new VolumeSpec { Name = $"{VmName(vm)}-root", Shelf = (ushort)disk.Number, Slot = (byte)(vm - 1), SizeBytes = RootVolumeBytes });
        }

        foreach (var disk in plan.Disks)
        {
            Step($"disk server {disk}");
            var pool = CreateDirectory(PoolDirectory(plan.StateDirectory, disk));
            // Polling after each batch buys latency on a dedicated core; here every server shares two cores, so workers sleep.
            await StartDaemonAsync(disk, ["disk", "serve", "--pool", pool, "-i", "eth0", "-i", "eth1", "--spin-us", "0",
                "--listen", $"{LabPlan.AddressOf(plan.ManagementSubnet, disk)}:{DiskApiPort}"], ct);
            using var api = new DiskApiClient(DiskApiClient.SocketPath(pool));
            await WaitForAsync(disk, async () => (await api.ListAsync(ct)).Count >= 0, ct);
        }

        foreach (var cpu in plan.Cpus)
        {
            Step($"CPU server {cpu} (QEMU with TCG: KVM cannot run guests on this machine)");
            var state = CreateDirectory(HostStateDirectory(plan.StateDirectory, cpu));
            await StartDaemonAsync(cpu, ["host", "serve", "--name", cpu.Name, "--state-dir", state, "-i", "eth0", "-i", "eth1",
                "--listen", $"{LabPlan.AddressOf(plan.ManagementSubnet, cpu)}:{HostApiPort}", "--vm-bridge", LabPlan.VmBridge, "--accel", "tcg"], ct);
            using var api = new HostApiClient(Path.Combine(state, "host.sock"));
            await WaitForAsync(cpu, async () => (await api.InfoAsync(ct)).Name == cpu.Name, ct);
        }

        var booted = new List<(string, IPAddress, TimeSpan, long)>();
        for (var vm = 1; vm <= vms; vm++)
        {
            var name = VmName(vm);
            var cpu = plan.Cpus.ElementAt((vm - 1) % plan.CpuServers);
            Step($"{name}: mirror e1.{vm - 1} + e2.{vm - 1}, root file system written through it from {image.RootImagePath}");
            var (self, prefix) = Self();
            var create = await Command.RunAsync("ip", ["netns", "exec", plan.NamespaceOf(cpu), self, .. prefix, "mirror", "create", "--assume-clean",
                "-i", "eth0", "-i", "eth1", "--leg", $"e1.{vm - 1}", "--leg", $"e2.{vm - 1}", "--image", image.RootImagePath], TimeSpan.FromMinutes(5), ct);
            if (!create.Succeeded)
                throw new IOException($"creating {name}'s mirror failed:\n{create.StdOut}{create.StdErr}");

            Step($"{name}: boot on {cpu} from its mirrored disk");
            var address = VmAddress(plan, vm);
            var definition = new VmDefinition(name, Guid.NewGuid(), 1, 256,
                new VmBoot(image.KernelPath, image.InitrdPath, image.KernelCommandLine(new VmGuestNetwork(address, plan.VmSubnet.PrefixLength, name))),
                [new VmDiskDefinition("root", [$"e1.{vm - 1}", $"e2.{vm - 1}"])],
                [new VmNicDefinition("eth0", $"52:54:00:77:01:{vm:x2}")],
                VncDisplay: vm);
            var started = Stopwatch.StartNew();
            using (var api = new HostApiClient(Path.Combine(HostStateDirectory(plan.StateDirectory, cpu), "host.sock")))
                await api.StartAsync(new StartVmRequest(definition), ct);
            var counter = await WaitForCounterAsync(plan, address, BootTimeout, ct);
            booted.Add((name, address, started.Elapsed, counter));
            Detail($"{name} answers at http://{address}/counter (counter {counter}) {started.Elapsed.TotalSeconds:0.0} s after start");
        }
        log.WriteLine($"lab up in {clock.Elapsed.TotalSeconds:0.0} s");
        return booted;
    }

    /// <summary>Deletes the disk servers' pools and the host daemons' state: only once every process using them is gone.</summary>
    public static void RemoveData(string labState)
    {
        foreach (var directory in new[] { "pools", "hosts" }.Select(d => Path.Combine(labState, d)).Where(Directory.Exists))
            Directory.Delete(directory, recursive: true);
    }

    /// <summary>Reads a lab VM's counter over HTTP from the admin station (the switch namespace); null when it does not answer.</summary>
    public static async Task<long?> ReadCounterAsync(LabPlan plan, IPAddress address, CancellationToken ct)
    {
        using var http = NamespaceHttp.Create(plan.SwitchNamespace, TimeSpan.FromSeconds(2));
        try
        {
            var text = await http.GetStringAsync($"http://{address}/counter", ct);
            return long.TryParse(text.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : null;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
        {
            return null;
        }
    }

    private static async Task<long> WaitForCounterAsync(LabPlan plan, IPAddress address, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            if (await ReadCounterAsync(plan, address, ct) is { } counter)
                return counter;
            await Task.Delay(TimeSpan.FromMilliseconds(500), ct);
        }
        throw new TimeoutException($"the VM at {address} did not answer HTTP within {timeout.TotalSeconds:0} s; see its serial log with `xenaoe vm show`");
    }

    private async Task StartDaemonAsync(LabServer server, string[] args, CancellationToken ct)
    {
        var (self, prefix) = Self();
        var entry = await _processes.StartAsync(plan.NamespaceOf(server), server.Name, self, [.. prefix, .. args], ct: ct);
        Detail($"pid {entry.Pid}, log {entry.LogFile}");
    }

    /// <summary>Waits until a daemon's API answers; a daemon that died says why (the end of its log).</summary>
    private async Task WaitForAsync(LabServer server, Func<Task<bool>> probe, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                if (await probe())
                    return;
            }
            catch (Exception e) when (e is HttpRequestException or StorageException or HostException or IOException)
            {
                // Not listening yet.
            }
            var entry = _processes.List().Single(p => p.Name == server.Name);
            if (!LabProcesses.IsRunning(entry) || deadline.Elapsed > DaemonStartTimeout)
            {
                var tail = File.Exists(entry.LogFile) ? string.Join('\n', File.ReadLines(entry.LogFile).TakeLast(15)) : "(no log)";
                throw new IOException($"the {server} daemon {(LabProcesses.IsRunning(entry) ? "does not answer" : "exited")}; end of {entry.LogFile}:\n{tail}");
            }
            await Task.Delay(TimeSpan.FromMilliseconds(200), ct);
        }
    }

    /// <summary>How to run this very CLI again inside a namespace: the apphost, or <c>dotnet xenaoe.dll</c>.</summary>
    public static (string File, string[] Prefix) Self()
    {
        var process = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell which program this is");
        return Path.GetFileNameWithoutExtension(process) == "dotnet"
            ? (process, [typeof(LabCluster).Assembly.Location])
            : (process, []);
    }

    private static string CreateDirectory(string path)
    {
        Directory.CreateDirectory(path);
        return path;
    }

    private void Step(string message) => log.WriteLine($"[{++_step}/{_steps}] {message}");

    private void Detail(string message) => log.WriteLine($"      {message}");
}
