using System.Diagnostics;
using System.Globalization;
using System.Net;
using XenAoe.Agents;
using System.Text.Json;
using System.Text.Json.Serialization;
using XenAoe.Agents.Host;
using XenAoe.Control;
using XenAoe.Control.Api;
using XenAoe.Control.Join;
using XenAoe.Control.Model;
using XenAoe.Lab.Guests;
using XenAoe.Storage;

namespace XenAoe.Lab.Cluster;

/// <summary>Where the lab's controllers keep the desired state.</summary>
public enum LabStore
{
    Sqlite,
    Etcd,
}

/// <summary>Where a lab's controllers listen, recorded by <c>xenaoe lab up</c> in <c>LAB_STATE/controller.json</c>.</summary>
/// <param name="Namespace">The lab's admin-station namespace, on whose management network the controllers listen.</param>
public sealed record LabControllers(string Namespace, IReadOnlyList<string> Urls, string TokenFile, string Store)
{
    public static string FileIn(string labState) => Path.Combine(labState, "controller.json");
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(LabControllers))]
public sealed partial class LabControllersJsonContext : JsonSerializerContext;

/// <summary>
/// <c>xenaoe lab up</c> past the network: the disk and host daemons in their namespaces, the guest image, the first VMs'
/// mirrored root volumes, and the VMs booted from them. Every daemon is started through <see cref="LabProcesses"/>, so
/// <c>lab down</c> finds it even after a crash. The daemons are the product's own <c>xenaoe</c> program, given as
/// <paramref name="xenaoe"/>.
/// </summary>
public sealed class LabCluster(LabPlan plan, TextWriter log, LabCluster.Program xenaoe)
{
    public const int DiskApiPort = MachineJoin.DiskApiPort;
    public const int HostApiPort = MachineJoin.HostApiPort;
    public const int ControllerApiPort = 7400;
    public const long RootVolumeBytes = 128L << 20;
    private static readonly TimeSpan DaemonStartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan BootTimeout = TimeSpan.FromMinutes(3);

    /// <summary>How to run the <c>xenaoe</c> program: an apphost, or <c>dotnet</c> with the assembly as <paramref name="Prefix"/>.</summary>
    public sealed record Program(string File, IReadOnlyList<string> Prefix);

    private readonly LabProcesses _processes = new(plan.StateDirectory);
    private int _step;
    private int _steps;

    public static string HostStateDirectory(string labState, LabServer cpu) => Path.Combine(labState, "hosts", cpu.Name);

    public static string TokenFile(string labState) => Path.Combine(labState, "controller", "token");

    public static string PoolDirectory(string labState, LabServer disk) => Path.Combine(labState, "pools", disk.Name);

    /// <summary>A lab machine's <c>/etc/xenaoe</c>: what its <c>xenaoe join</c> wrote (ROLE.conf and the cluster's token).</summary>
    public static string ConfigDirectory(string labState, LabServer server) => Path.Combine(labState, "etc", server.Name);

    /// <summary>VM n is .(40+n) on the VM subnet (servers use .1 to .29; the subnet is at least a /26).</summary>
    public static IPAddress VmAddress(LabPlan plan, int vm) => new([.. plan.VmSubnet.BaseAddress.GetAddressBytes()[..3], (byte)(40 + vm)]);

    public static string VmName(int vm) => $"vm{vm}";

    public static string HostApiUrl(LabPlan plan, LabServer cpu) => $"http://{LabPlan.AddressOf(plan.ManagementSubnet, cpu)}:{HostApiPort}";

    /// <summary>Builds everything and boots <paramref name="vms"/> VMs; returns how long each took to answer over HTTP.</summary>
    public async Task<IReadOnlyList<(string Vm, IPAddress Address, TimeSpan Boot, long Counter)>> UpAsync(int vms, LabStore store, CancellationToken ct)
    {
        Root.Require("xenaoe lab up");
        var clock = Stopwatch.StartNew();
        _steps = 5 + plan.DiskServers + plan.CpuServers + vms;

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

        Step(store == LabStore.Etcd
            ? "control plane: 3 etcd members and 2 controllers (one leads) on the admin station"
            : "control plane: a controller with its embedded SQLite store on the admin station");
        using var controller = await StartControlPlaneAsync(store, ct);

        Step("cluster identity and a join token (`xenaoe cluster init`)");
        var cluster = await controller.InitClusterAsync(ct);
        var join = await controller.CreateJoinTokenAsync(ttl: null, ct);
        Detail($"cluster {cluster.Id}, join token {join.Id} valid until {join.ExpiresAt:HH:mm:ss}");

        // Each machine joins as a real one does (`xenaoe join` inside its namespace, power circuits as failure domains), except
        // that the lab starts the daemon with the written configuration where a machine's systemd would.
        foreach (var disk in plan.Disks)
        {
            Step($"disk server {disk}: `xenaoe join --role disk`, its daemon started, registered by itself");
            var pool = CreateDirectory(PoolDirectory(plan.StateDirectory, disk));
            // Polling after each batch buys latency on a dedicated core; here every server shares two cores, so workers sleep.
            await JoinAsync(controller, disk, "disk", join.Token, ["--set", $"pool={pool}", "--set", "spin_us=0"], ct);
        }

        foreach (var cpu in plan.Cpus)
        {
            Step($"CPU server {cpu}: `xenaoe join --role cpu`, its daemon started (QEMU with TCG: KVM cannot run guests on this machine), registered by itself");
            var state = CreateDirectory(HostStateDirectory(plan.StateDirectory, cpu));
            await JoinAsync(controller, cpu, "cpu", join.Token, ["--set", $"state_dir={state}", "--set", $"vm_bridge={LabPlan.VmBridge}", "--set", "accel=tcg"], ct);
        }

        var booted = new List<(string, IPAddress, TimeSpan, long)>();
        for (var vm = 1; vm <= vms; vm++)
        {
            var name = VmName(vm);
            var address = VmAddress(plan, vm);
            Step($"{name}: `vm create` job: mirrored root disk on two disk servers, the guest image written through it, boot");
            var started = Stopwatch.StartNew();
            var job = await controller.CreateVmAsync(new CreateVmRequest(name, 1, 256, RootVolumeBytes, image.KernelPath, image.InitrdPath,
                image.KernelCommandLine(new VmGuestNetwork(address, plan.VmSubnet.PrefixLength, name)), image.RootImagePath,
                Host: plan.Cpus.ElementAt((vm - 1) % plan.CpuServers).Name, Mac: $"52:54:00:77:01:{vm:x2}", VncDisplay: vm), ct);
            var done = await controller.WaitAsync(job.Id, j =>
            {
                if (j.Steps.LastOrDefault() is { State: JobState.Succeeded or JobState.Failed } step)
                    Detail($"job {j.Id} {step.Name}: {step.State.ToString().ToLowerInvariant()}{(step.Detail is null ? "" : $" ({step.Detail})")}");
            }, ct);
            if (done.State != JobState.Succeeded)
                throw new IOException($"creating {name} failed (job {done.Id}): {done.Error}");
            var counter = await WaitForCounterAsync(plan, address, BootTimeout, ct);
            booted.Add((name, address, started.Elapsed, counter));
            Detail($"{name} answers at http://{address}/counter (counter {counter}) {started.Elapsed.TotalSeconds:0.0} s after the job was submitted");
        }
        log.WriteLine($"lab up in {clock.Elapsed.TotalSeconds:0.0} s");
        return booted;
    }

    /// <summary>
    /// Starts the controllers on the admin station (the switch namespace, 10.77.0.1 on the management network) and records
    /// where they are for the CLI. SQLite: one controller. etcd: three members on that address and two controllers sharing them.
    /// </summary>
    private async Task<ControllerClient> StartControlPlaneAsync(LabStore store, CancellationToken ct)
    {
        var admin = LabPlan.AdminAddress(plan.ManagementSubnet);
        var directory = CreateDirectory(Path.Combine(plan.StateDirectory, "controller"));
        // The cluster's API token, made here so the lab reads it at once; machines get it by joining.
        var tokenFile = TokenFile(plan.StateDirectory);
        ApiToken.ReadOrCreate(tokenFile);
        string storeText;
        var controllers = store == LabStore.Etcd ? 2 : 1;
        if (store == LabStore.Etcd)
        {
            var members = Enumerable.Range(1, 3).Select(m => (Name: $"etcd{m}", Client: $"http://{admin}:{2279 + 100 * m}", Peer: $"http://{admin}:{2280 + 100 * m}")).ToList();
            var cluster = string.Join(",", members.Select(m => $"{m.Name}={m.Peer}"));
            foreach (var member in members)
            {
                await _processes.StartAsync(plan.SwitchNamespace, member.Name, "etcd",
                [
                    "--name", member.Name, "--data-dir", CreateDirectory(Path.Combine(directory, member.Name)),
                    "--listen-client-urls", member.Client, "--advertise-client-urls", member.Client,
                    "--listen-peer-urls", member.Peer, "--initial-advertise-peer-urls", member.Peer,
                    "--initial-cluster", cluster, "--initial-cluster-state", "new", "--initial-cluster-token", $"xenaoe-{plan.Prefix}",
                ], ct: ct);
            }
            storeText = "etcd:" + string.Join(",", members.Select(m => m.Client));
        }
        else
        {
            storeText = $"sqlite:{Path.Combine(directory, "state.db")}";
        }
        var urls = new List<string>();
        for (var c = 1; c <= controllers; c++)
        {
            var url = $"http://{admin}:{ControllerApiPort + c - 1}";
            urls.Add(url);
            await StartDaemonAsync($"controller{c}", plan.SwitchNamespace, ["controller", "serve", "--name", $"controller{c}", "--store", storeText,
                "--listen", $"{admin}:{ControllerApiPort + c - 1}", "--token-file", tokenFile, "--config", "/dev/null"], ct);
        }
        var lab = new LabControllers(plan.SwitchNamespace, urls, tokenFile, storeText);
        File.WriteAllText(LabControllers.FileIn(plan.StateDirectory), JsonSerializer.Serialize(lab, LabControllersJsonContext.Default.LabControllers));
        var client = new ControllerClient(urls, File.ReadAllText(tokenFile).Trim(), TimeSpan.FromSeconds(30), plan.SwitchNamespace);
        foreach (var url in urls)
        {
            using var one = new ControllerClient([url], File.ReadAllText(tokenFile).Trim(), TimeSpan.FromSeconds(5), plan.SwitchNamespace);
            await WaitForAsync($"controller{urls.IndexOf(url) + 1}", async () => (await one.HealthAsync(ct)).Name.Length > 0, ct);
        }
        var deadline = Stopwatch.StartNew();
        while ((await client.HealthAsync(ct)).LeaderName is null && deadline.Elapsed < DaemonStartTimeout)
            await Task.Delay(TimeSpan.FromMilliseconds(200), ct);
        Detail($"controllers at {string.Join(", ", urls)} (leader {(await client.HealthAsync(ct)).LeaderName}), store {storeText}, token in {tokenFile}");
        return client;
    }

    /// <summary>Deletes the disk servers' pools and the host daemons' state: only once every process using them is gone.</summary>
    public static void RemoveData(string labState)
    {
        foreach (var directory in new[] { "pools", "hosts", "controller", "etc" }.Select(d => Path.Combine(labState, d)).Where(Directory.Exists))
            Directory.Delete(directory, recursive: true);
        File.Delete(LabControllers.FileIn(labState));
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

    /// <summary>
    /// Runs <c>xenaoe join --no-start</c> in the machine's namespace (its configuration in <see cref="ConfigDirectory"/>), starts
    /// the daemon on that configuration, and waits until the controller lists it: the lab's machines enter the inventory only
    /// the way real ones do.
    /// </summary>
    private async Task JoinAsync(ControllerClient controller, LabServer server, string role, string token, string[] settings, CancellationToken ct)
    {
        // The controller runs on this machine: its clock and this one are the same.
        var since = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        var directory = ConfigDirectory(plan.StateDirectory, server);
        var joined = await Command.RunAsync("ip", ["netns", "exec", plan.NamespaceOf(server), xenaoe.File, .. xenaoe.Prefix, "join",
            .. controller.Urls.SelectMany(u => new[] { "--controller", u }), "--token", token, "--role", role, "--name", server.Name,
            "-i", "eth0", "-i", "eth1", "--storage-mtu", $"{plan.StorageMtu}", "--label", $"power=circuit{(server.Number - 1) % 2 + 1}",
            "--config-dir", directory, "--no-start", .. settings], ct: ct);
        if (!joined.Succeeded)
            throw new IOException($"`xenaoe join` of {server.Name} failed: {joined.StdErr.Trim()}{joined.StdOut.Trim()}");
        var schema = MachineJoin.Schema(role);
        await StartDaemonAsync(server.Name, plan.NamespaceOf(server), [schema.Role, "serve", "--config", Path.Combine(directory, schema.Role + ".conf")], ct);
        await WaitForAsync(server.Name, () => MachineJoin.IsListedAsync(controller, role, server.Name, since, ct), ct);
        Detail($"{server.Name} listed by the controller {clock.Elapsed.TotalSeconds:0.00} s after its join began");
    }

    /// <summary>
    /// Starts a daemon on the configuration file given in <paramref name="args"/> (the lab's controllers on <c>/dev/null</c>
    /// and flags): a machine's own <c>/etc/xenaoe/ROLE.conf</c> (the package installed beside the demo) never changes the lab.
    /// </summary>
    private async Task StartDaemonAsync(string name, string ns, string[] args, CancellationToken ct)
    {
        var entry = await _processes.StartAsync(ns, name, xenaoe.File, [.. xenaoe.Prefix, .. args], ct: ct);
        Detail($"pid {entry.Pid}, log {entry.LogFile}");
    }

    /// <summary>Waits until a daemon's API answers; a daemon that died says why (the end of its log).</summary>
    private async Task WaitForAsync(string server, Func<Task<bool>> probe, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                if (await probe())
                    return;
            }
            catch (Exception e) when (e is HttpRequestException or StorageException or HostException or IOException or ControlException or TimeoutException)
            {
                // Not listening yet.
            }
            var entry = _processes.List().Single(p => p.Name == server);
            if (!LabProcesses.IsRunning(entry) || deadline.Elapsed > DaemonStartTimeout)
            {
                var tail = File.Exists(entry.LogFile) ? string.Join('\n', File.ReadLines(entry.LogFile).TakeLast(15)) : "(no log)";
                throw new IOException($"the {server} daemon {(LabProcesses.IsRunning(entry) ? "does not answer" : "exited")}; end of {entry.LogFile}:\n{tail}");
            }
            await Task.Delay(TimeSpan.FromMilliseconds(200), ct);
        }
    }

    private static string CreateDirectory(string path)
    {
        Directory.CreateDirectory(path);
        return path;
    }

    private void Step(string message) => log.WriteLine($"[{++_step}/{_steps}] {message}");

    private void Detail(string message) => log.WriteLine($"      {message}");
}
