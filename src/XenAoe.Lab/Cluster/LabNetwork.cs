using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace XenAoe.Lab.Cluster;

/// <summary>
/// Builds, checks, reports and removes the lab's network (see <see cref="LabPlan"/> for names and addresses). Every
/// namespace and link is recorded in state.json before it is made and confirmed after, so <see cref="DownAsync"/> removes
/// a lab whose builder crashed at any point. Needs root. Commands on one state directory are serialized by its lock.
/// </summary>
public static partial class LabNetwork
{
    private static readonly TimeSpan s_ipTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan s_forwardingTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Builds the lab of <paramref name="plan"/>, reporting each step. On failure it removes what it made and rethrows.
    /// </summary>
    /// <exception cref="LabException">A lab is already recorded in the state directory or namespaces with its names exist.</exception>
    public static async Task<LabState> UpAsync(LabPlan plan, IProgress<LabProgress>? progress = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        plan.Validate();
        Root.Require("xenaoe lab up");
        await using var file = await LabStateFile.OpenAsync(plan.StateDirectory, createDirectory: true, ct).ConfigureAwait(false);
        if (file.State is { } recorded)
            throw new LabException($"A lab (prefix '{recorded.Prefix}', {recorded.Phase}) is already recorded in {file.Path}: run `xenaoe lab down` first.");
        var leftovers = (await ListNamespacesAsync(ct).ConfigureAwait(false)).Where(n => LabPlan.IsLabNamespace(plan.Prefix, n)).ToList();
        if (leftovers.Count > 0)
            throw new LabException($"Namespaces of a lab with prefix '{plan.Prefix}' already exist ({string.Join(", ", leftovers)}): run `xenaoe lab down` first.");

        var state = LabState.For(plan);
        file.State = state;
        await file.SaveAsync(ct).ConfigureAwait(false);
        var steps = BuildSteps(plan, file, ct);
        try
        {
            for (var i = 0; i < steps.Count; i++)
            {
                progress?.Report(new LabProgress(i + 1, steps.Count, steps[i].Message));
                await steps[i].Run().ConfigureAwait(false);
            }
        }
        catch
        {
            // Leave nothing half-built: the record names everything made so far, and the sweep by name catches the rest.
            // Cancellation of the build does not cancel its clean-up.
            await TearDownAsync(file, plan.Prefix, progress: null, CancellationToken.None).ConfigureAwait(false);
            throw;
        }
        return state;
    }

    /// <summary>
    /// Removes the lab recorded in <paramref name="stateDirectory"/>: stops the recorded daemons (pid and start time must
    /// match), deletes the TAPs and the namespaces (their veths and bridges go with them), and also every namespace named
    /// like the lab's (PREFIX-sw, PREFIX-diskN, PREFIX-cpuN) that the record misses, killing the processes inside each first.
    /// <paramref name="prefix"/> is used only when no record exists. Succeeds, with <see cref="LabDownReport.LabFound"/>
    /// false, when there is no lab; running it twice is fine.
    /// </summary>
    public static async Task<LabDownReport> DownAsync(string stateDirectory, IProgress<LabProgress>? progress = null, string prefix = LabPlan.DefaultPrefix, CancellationToken ct = default)
    {
        Root.Require("xenaoe lab down");
        await using var file = await LabStateFile.OpenAsync(stateDirectory, createDirectory: false, ct).ConfigureAwait(false);
        return await TearDownAsync(file, file.State?.Prefix ?? prefix, progress, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Unplugs every port of one storage switch (<c>san0</c> or <c>san1</c>), or plugs them all back: what a switch losing
    /// power does to its servers, which keep their NICs but hear nothing on them. Returns the ports changed.
    /// </summary>
    public static async Task<IReadOnlyList<string>> SetStorageSwitchAsync(string stateDirectory, string storageSwitch, bool up, CancellationToken ct = default)
    {
        Root.Require("xenaoe lab switch");
        var state = LabStateFile.Read(stateDirectory) ?? throw new LabException($"No lab is recorded in {stateDirectory}: start one with `xenaoe lab up`.");
        if (!LabPlan.StorageSwitches.Contains(storageSwitch))
            throw new LabException($"'{storageSwitch}' is not a storage switch of the lab ({string.Join(", ", LabPlan.StorageSwitches)}).");
        var plan = state.ToPlan(stateDirectory);
        var ports = plan.Servers.Select(s => $"{s.Name}-{storageSwitch}").ToList();
        foreach (var port in ports)
            await IpAsync(ct, "-n", plan.SwitchNamespace, "link", "set", "dev", port, up ? "up" : "down").ConfigureAwait(false);
        return ports;
    }

    /// <summary>What exists: the recorded namespaces and any others named like the lab's, their links, TAPs and daemons.</summary>
    public static async Task<LabStatus> StatusAsync(string stateDirectory, string prefix = LabPlan.DefaultPrefix, CancellationToken ct = default)
    {
        var state = LabStateFile.Read(stateDirectory);
        prefix = state?.Prefix ?? prefix;
        var existing = await ListNamespacesAsync(ct).ConfigureAwait(false);
        var names = NamespacesToRemove(state, prefix, existing);
        var namespaces = new List<LabNamespaceStatus>();
        foreach (var name in names.Reverse())
        {
            var exists = existing.Contains(name);
            var links = exists ? await LinksAsync(name, ct).ConfigureAwait(false) : [];
            namespaces.Add(new LabNamespaceStatus(name, state?.Namespaces.Any(n => n.Name == name) == true, exists, links));
        }
        var taps = state?.Taps.Select(t => new LabTapStatus(t.Namespace, t.Name,
            namespaces.Any(n => n.Name == t.Namespace && n.Links.Any(l => l.Name == t.Name)))).ToList() ?? [];
        var processes = state?.Processes.Select(p => new LabProcessStatus(p.Name, p.Namespace, p.Pid, LabProcesses.IsRunning(p), p.LogFile,
            Command.FormatCommandLine(p.File, p.Args))).ToList() ?? [];
        return new LabStatus(stateDirectory, prefix, state is not null, state?.Phase, namespaces, taps, processes);
    }

    /// <summary>
    /// Pings, with don't-fragment packets filling the storage MTU (`ping -M do -s MTU-28`), from every server to every other
    /// on each storage switch, inside the namespaces. A failing path is probed for the largest MTU it carries.
    /// </summary>
    /// <exception cref="LabException">No lab is recorded in <paramref name="stateDirectory"/>.</exception>
    public static async Task<JumboFrameReport> CheckJumboFramesAsync(string stateDirectory, CancellationToken ct = default)
    {
        var state = LabStateFile.Read(stateDirectory) ?? throw new LabException($"No lab is recorded in {stateDirectory}: run `xenaoe lab up` first.");
        var plan = state.ToPlan(stateDirectory);
        var servers = plan.Servers.ToList();
        var checks = new List<Task<JumboFramePath>>();
        for (var s = 0; s < LabPlan.StorageSwitches.Count; s++)
        {
            for (var i = 0; i < servers.Count; i++)
            {
                for (var j = i + 1; j < servers.Count; j++)
                    checks.Add(CheckPathAsync(plan, s, servers[i], servers[j], ct));
            }
        }
        return new JumboFrameReport(plan.StorageMtu, await Task.WhenAll(checks).ConfigureAwait(false));
    }

    /// <summary>
    /// Creates TAP device <paramref name="tapName"/> (MTU 1500, up) in the namespace of CPU server <paramref name="cpuServer"/>
    /// (1-based) and attaches it to vmbr0. QEMU opens it by name from inside that namespace.
    /// </summary>
    public static async Task CreateTapAsync(string stateDirectory, int cpuServer, string tapName, CancellationToken ct = default)
    {
        if (!TapName().IsMatch(tapName))
            throw new ArgumentException($"TAP name '{tapName}' must be 1-15 letters, digits, '.', '_' or '-'.", nameof(tapName));
        await using var file = await LabStateFile.OpenAsync(stateDirectory, createDirectory: false, ct).ConfigureAwait(false);
        var state = file.State ?? throw new LabException($"No lab is recorded in {stateDirectory}: run `xenaoe lab up` first.");
        var ns = CpuNamespace(state, cpuServer);
        if (state.Taps.Any(t => t.Namespace == ns && t.Name == tapName))
            throw new LabException($"TAP {tapName} already exists in {ns}.");
        var entry = new LabTapEntry { Namespace = ns, Name = tapName, State = LabEntryState.Intended };
        state.Taps.Add(entry);
        await file.SaveAsync(ct).ConfigureAwait(false);
        await IpAsync(ct, "-n", ns, "tuntap", "add", "dev", tapName, "mode", "tap").ConfigureAwait(false);
        await IpAsync(ct, "-n", ns, "link", "set", tapName, "mtu", Invariant(LabPlan.StandardMtu), "master", LabPlan.VmBridge, "up").ConfigureAwait(false);
        entry.State = LabEntryState.Created;
        await file.SaveAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Deletes a TAP made by <see cref="CreateTapAsync"/>; false when it did not exist.</summary>
    public static async Task<bool> DeleteTapAsync(string stateDirectory, int cpuServer, string tapName, CancellationToken ct = default)
    {
        await using var file = await LabStateFile.OpenAsync(stateDirectory, createDirectory: false, ct).ConfigureAwait(false);
        var state = file.State ?? throw new LabException($"No lab is recorded in {stateDirectory}: run `xenaoe lab up` first.");
        var ns = CpuNamespace(state, cpuServer);
        var deleted = await DeleteLinkAsync(ns, tapName, ct).ConfigureAwait(false);
        state.Taps.RemoveAll(t => t.Namespace == ns && t.Name == tapName);
        await file.SaveAsync(ct).ConfigureAwait(false);
        return deleted;
    }

    /// <summary>The network namespaces that exist (`ip netns list`, names only).</summary>
    public static async Task<IReadOnlySet<string>> ListNamespacesAsync(CancellationToken ct = default)
    {
        var result = (await Command.RunAsync("ip", ["netns", "list"], s_ipTimeout, ct).ConfigureAwait(false)).EnsureSuccess();
        // Lines are "NAME" or "NAME (id: N)".
        return result.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split(' ', 2)[0]).ToHashSet(StringComparer.Ordinal);
    }

    private static string CpuNamespace(LabState state, int cpuServer)
    {
        if (cpuServer < 1 || cpuServer > state.CpuServers)
            throw new ArgumentOutOfRangeException(nameof(cpuServer), cpuServer, $"The lab has CPU servers 1..{state.CpuServers}.");
        return $"{state.Prefix}-{new LabServer(LabRole.Cpu, cpuServer).Name}";
    }

    private sealed record Step(string Message, Func<Task> Run);

    private static List<Step> BuildSteps(LabPlan plan, LabStateFile file, CancellationToken ct)
    {
        var state = file.State!;
        var sw = plan.SwitchNamespace;
        var steps = new List<Step>();
        foreach (var ns in plan.Namespaces)
        {
            steps.Add(new Step($"namespace {ns}", async () =>
            {
                var entry = new LabNamespaceEntry { Name = ns, State = LabEntryState.Intended };
                state.Namespaces.Add(entry);
                await file.SaveAsync(ct).ConfigureAwait(false);
                await IpAsync(ct, "netns", "add", ns).ConfigureAwait(false);
                entry.State = LabEntryState.Created;
                await file.SaveAsync(ct).ConfigureAwait(false);
                await IpAsync(ct, "-n", ns, "link", "set", "lo", "up").ConfigureAwait(false);
            }));
        }
        foreach (var bridge in LabPlan.StorageSwitches)
            steps.Add(new Step($"storage switch {bridge} in {sw} (MTU {plan.StorageMtu})", () => AddBridgeAsync(file, sw, bridge, plan.StorageMtu, ct)));
        steps.Add(new Step($"management switch {LabPlan.ManagementSwitch} in {sw}, admin station {LabPlan.AdminAddress(plan.ManagementSubnet)}", async () =>
        {
            await AddBridgeAsync(file, sw, LabPlan.ManagementSwitch, LabPlan.StandardMtu, ct).ConfigureAwait(false);
            await IpAsync(ct, "-n", sw, "addr", "add", LabPlan.WithPrefixLength(LabPlan.AdminAddress(plan.ManagementSubnet), plan.ManagementSubnet), "dev", LabPlan.ManagementSwitch).ConfigureAwait(false);
        }));
        steps.Add(new Step($"VM network {LabPlan.VmSwitch} in {sw}, admin station {LabPlan.AdminAddress(plan.VmSubnet)}", async () =>
        {
            await AddBridgeAsync(file, sw, LabPlan.VmSwitch, LabPlan.StandardMtu, ct).ConfigureAwait(false);
            await IpAsync(ct, "-n", sw, "addr", "add", LabPlan.WithPrefixLength(LabPlan.AdminAddress(plan.VmSubnet), plan.VmSubnet), "dev", LabPlan.VmSwitch).ConfigureAwait(false);
        }));
        foreach (var server in plan.Servers)
        {
            var ns = plan.NamespaceOf(server);
            steps.Add(new Step($"{ns}: eth0/eth1 on san0/san1, {LabPlan.ManagementNic} {LabPlan.AddressOf(plan.ManagementSubnet, server)}", async () =>
            {
                for (var i = 0; i < LabPlan.StorageSwitches.Count; i++)
                {
                    var bridge = LabPlan.StorageSwitches[i];
                    await AddPortAsync(file, sw, $"{server.Name}-{bridge}", bridge, ns, $"eth{i}", plan.StorageMtu, ct).ConfigureAwait(false);
                    var subnet = plan.StorageSubnet(i);
                    await IpAsync(ct, "-n", ns, "addr", "add", LabPlan.WithPrefixLength(LabPlan.AddressOf(subnet, server), subnet), "dev", $"eth{i}").ConfigureAwait(false);
                }
                await AddPortAsync(file, sw, $"{server.Name}-{LabPlan.ManagementSwitch}", LabPlan.ManagementSwitch, ns, LabPlan.ManagementNic, LabPlan.StandardMtu, ct).ConfigureAwait(false);
                await IpAsync(ct, "-n", ns, "addr", "add", LabPlan.WithPrefixLength(LabPlan.AddressOf(plan.ManagementSubnet, server), plan.ManagementSubnet), "dev", LabPlan.ManagementNic).ConfigureAwait(false);
            }));
            if (server.Role == LabRole.Cpu)
            {
                steps.Add(new Step($"{ns}: VM bridge {LabPlan.VmBridge} with uplink {LabPlan.VmUplink} to {LabPlan.VmSwitch}", async () =>
                {
                    await AddBridgeAsync(file, ns, LabPlan.VmBridge, LabPlan.StandardMtu, ct).ConfigureAwait(false);
                    await AddPortAsync(file, sw, $"{server.Name}-{LabPlan.VmSwitch}", LabPlan.VmSwitch, ns, LabPlan.VmUplink, LabPlan.StandardMtu, ct).ConfigureAwait(false);
                    await IpAsync(ct, "-n", ns, "link", "set", LabPlan.VmUplink, "master", LabPlan.VmBridge, "up").ConfigureAwait(false);
                }));
            }
        }
        steps.Add(new Step("every switch port forwarding", () => WaitForwardingAsync(plan, ct)));
        steps.Add(new Step("lab recorded as up", async () =>
        {
            state.Phase = "up";
            await file.SaveAsync(ct).ConfigureAwait(false);
        }));
        return steps;
    }

    private static async Task AddBridgeAsync(LabStateFile file, string ns, string name, int mtu, CancellationToken ct)
    {
        var entry = new LabLinkEntry { Namespace = ns, Name = name, Kind = "bridge", Mtu = mtu, State = LabEntryState.Intended };
        file.State!.Links.Add(entry);
        await file.SaveAsync(ct).ConfigureAwait(false);
        await IpAsync(ct, "-n", ns, "link", "add", name, "type", "bridge", "stp_state", "0", "forward_delay", "0").ConfigureAwait(false);
        await IpAsync(ct, "-n", ns, "link", "set", name, "mtu", Invariant(mtu), "up").ConfigureAwait(false);
        entry.State = LabEntryState.Created;
        await file.SaveAsync(ct).ConfigureAwait(false);
    }

    /// <summary>A veth pair: <paramref name="port"/> in <paramref name="switchNs"/> on <paramref name="bridge"/>, <paramref name="nic"/> in <paramref name="hostNs"/>; both up at <paramref name="mtu"/>.</summary>
    private static async Task AddPortAsync(LabStateFile file, string switchNs, string port, string bridge, string hostNs, string nic, int mtu, CancellationToken ct)
    {
        var entry = new LabLinkEntry
        {
            Namespace = switchNs,
            Name = port,
            Kind = "veth",
            PeerNamespace = hostNs,
            PeerName = nic,
            Mtu = mtu,
            State = LabEntryState.Intended,
        };
        file.State!.Links.Add(entry);
        await file.SaveAsync(ct).ConfigureAwait(false);
        await IpAsync(ct, "-n", switchNs, "link", "add", port, "mtu", Invariant(mtu), "type", "veth", "peer", "name", nic, "mtu", Invariant(mtu), "netns", hostNs).ConfigureAwait(false);
        entry.State = LabEntryState.Created;
        await file.SaveAsync(ct).ConfigureAwait(false);
        await IpAsync(ct, "-n", switchNs, "link", "set", port, "master", bridge, "up").ConfigureAwait(false);
        await IpAsync(ct, "-n", hostNs, "link", "set", nic, "up").ConfigureAwait(false);
    }

    private static async Task WaitForwardingAsync(LabPlan plan, CancellationToken ct)
    {
        var expected = new List<(string Ns, string Port)>();
        foreach (var server in plan.Servers)
        {
            foreach (var bridge in LabPlan.StorageSwitches.Append(LabPlan.ManagementSwitch))
                expected.Add((plan.SwitchNamespace, $"{server.Name}-{bridge}"));
            if (server.Role == LabRole.Cpu)
            {
                expected.Add((plan.SwitchNamespace, $"{server.Name}-{LabPlan.VmSwitch}"));
                expected.Add((plan.NamespaceOf(server), LabPlan.VmUplink));
            }
        }
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var waiting = new List<string>();
            foreach (var group in expected.GroupBy(e => e.Ns))
            {
                var states = await PortStatesAsync(group.Key, ct).ConfigureAwait(false);
                waiting.AddRange(group.Where(e => states.GetValueOrDefault(e.Port) != "forwarding").Select(e => $"{e.Ns}/{e.Port}"));
            }
            if (waiting.Count == 0)
                return;
            if (clock.Elapsed > s_forwardingTimeout)
                throw new LabException($"Switch ports not forwarding after {s_forwardingTimeout.TotalSeconds} s: {string.Join(", ", waiting)}.");
            await Task.Delay(TimeSpan.FromMilliseconds(50), ct).ConfigureAwait(false);
        }
    }

    private static async Task<Dictionary<string, string>> PortStatesAsync(string ns, CancellationToken ct)
    {
        var result = (await Command.RunAsync("bridge", ["-n", ns, "-j", "link", "show"], s_ipTimeout, ct).ConfigureAwait(false)).EnsureSuccess();
        var states = new Dictionary<string, string>(StringComparer.Ordinal);
        if (string.IsNullOrWhiteSpace(result.StdOut))
            return states;
        using var json = JsonDocument.Parse(result.StdOut);
        foreach (var port in json.RootElement.EnumerateArray())
        {
            if (port.TryGetProperty("ifname", out var name) && port.TryGetProperty("state", out var portState))
                states[name.GetString()!] = portState.GetString() ?? "";
        }
        return states;
    }

    private static async Task<LabDownReport> TearDownAsync(LabStateFile file, string prefix, IProgress<LabProgress>? progress, CancellationToken ct)
    {
        var state = file.State;
        var existing = await ListNamespacesAsync(ct).ConfigureAwait(false);
        var namespaces = NamespacesToRemove(state, prefix, existing).Where(existing.Contains).ToList();
        if (state is null && namespaces.Count == 0)
        {
            progress?.Report(new LabProgress(1, 1, $"no lab here (no {file.Path}, no namespace named {prefix}-*)"));
            return new LabDownReport(false, [], []);
        }

        var removed = new List<string>();
        var problems = new List<string>();
        var processes = state?.Processes ?? [];
        var taps = state?.Taps ?? [];
        var total = processes.Count + taps.Count + namespaces.Count + 1;
        var step = 0;
        void Report(string message) => progress?.Report(new LabProgress(++step, total, message));

        foreach (var process in processes.ToList())
        {
            Report($"stop daemon {process.Name} (pid {process.Pid?.ToString(CultureInfo.InvariantCulture) ?? "not recorded"}) in {process.Namespace}");
            try
            {
                if (await LabProcesses.StopAsync(process, LabProcesses.DefaultGrace, ct).ConfigureAwait(false))
                    removed.Add($"daemon {process.Name} (pid {process.Pid})");
                state!.Processes.Remove(process);
            }
            catch (LabException e)
            {
                problems.Add($"daemon {process.Name}: {e.Message}");
            }
        }
        foreach (var tap in taps.ToList())
        {
            Report($"delete TAP {tap.Name} in {tap.Namespace}");
            try
            {
                if (existing.Contains(tap.Namespace) && await DeleteLinkAsync(tap.Namespace, tap.Name, ct).ConfigureAwait(false))
                    removed.Add($"TAP {tap.Namespace}/{tap.Name}");
                state!.Taps.Remove(tap);
            }
            catch (CommandFailedException e)
            {
                problems.Add($"TAP {tap.Namespace}/{tap.Name}: {e.Result.StdErr.Trim()}");
            }
        }
        foreach (var ns in namespaces)
        {
            Report($"delete namespace {ns} and the processes inside it");
            try
            {
                foreach (var pid in await NamespacePidsAsync(ns, ct).ConfigureAwait(false))
                {
                    if (ProcStat.Read(pid) is { Running: true } stat)
                    {
                        await LabProcesses.TerminateAsync(stat, LabProcesses.DefaultGrace, ct).ConfigureAwait(false);
                        removed.Add($"process {pid} in {ns}");
                    }
                }
                var deleted = await Command.RunAsync("ip", ["netns", "del", ns], s_ipTimeout, ct).ConfigureAwait(false);
                if (deleted.ExitCode != 0 && File.Exists($"/run/netns/{ns}"))
                    problems.Add($"namespace {ns}: {deleted.StdErr.Trim()}");
                else
                    removed.Add($"namespace {ns}");
            }
            catch (Exception e) when (e is LabException or CommandFailedException or TimeoutException)
            {
                problems.Add($"namespace {ns}: {e.Message}");
            }
        }
        Report(problems.Count == 0 ? $"remove {file.Path}" : $"keep {file.Path}: {problems.Count} problem(s) left, run `xenaoe lab down` again");
        if (problems.Count == 0)
        {
            file.Delete();
        }
        else if (state is not null)
        {
            state.Namespaces.RemoveAll(n => removed.Contains($"namespace {n.Name}"));
            await file.SaveAsync(ct).ConfigureAwait(false);
        }
        return new LabDownReport(true, removed, problems);
    }

    /// <summary>Recorded namespaces and existing ones named like the lab's; server namespaces first, the switch namespace last.</summary>
    private static IReadOnlyList<string> NamespacesToRemove(LabState? state, string prefix, IReadOnlySet<string> existing)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var ns in state?.Namespaces ?? [])
            names.Add(ns.Name);
        foreach (var ns in existing)
        {
            if (LabPlan.IsLabNamespace(prefix, ns))
                names.Add(ns);
        }
        var switchNs = $"{prefix}-sw";
        return [.. names.Where(n => n != switchNs).OrderDescending(StringComparer.Ordinal), .. names.Where(n => n == switchNs)];
    }

    private static async Task<IReadOnlyList<int>> NamespacePidsAsync(string ns, CancellationToken ct)
    {
        var result = (await Command.RunAsync("ip", ["netns", "pids", ns], s_ipTimeout, ct).ConfigureAwait(false)).EnsureSuccess();
        return [.. result.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => int.TryParse(line, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : 0)
            .Where(pid => pid > 0 && pid != Environment.ProcessId)];
    }

    /// <summary>Deletes a link; false when it did not exist.</summary>
    private static async Task<bool> DeleteLinkAsync(string ns, string name, CancellationToken ct)
    {
        var result = await Command.RunAsync("ip", ["-n", ns, "link", "del", name], s_ipTimeout, ct).ConfigureAwait(false);
        if (result.ExitCode == 0)
            return true;
        if (result.StdErr.Contains("Cannot find device", StringComparison.Ordinal) || result.StdErr.Contains("Cannot open network namespace", StringComparison.Ordinal))
            return false;
        throw new CommandFailedException(result);
    }

    private static async Task<IReadOnlyList<LabLinkStatus>> LinksAsync(string ns, CancellationToken ct)
    {
        var result = await Command.RunAsync("ip", ["-n", ns, "-d", "-j", "addr", "show"], s_ipTimeout, ct).ConfigureAwait(false);
        if (result.ExitCode != 0 || string.IsNullOrWhiteSpace(result.StdOut))
            return [];
        using var json = JsonDocument.Parse(result.StdOut);
        var links = new List<LabLinkStatus>();
        foreach (var link in json.RootElement.EnumerateArray())
        {
            var flags = link.TryGetProperty("flags", out var f) ? f.EnumerateArray().Select(x => x.GetString()).ToList() : [];
            var kind = link.TryGetProperty("linkinfo", out var info) && info.TryGetProperty("info_kind", out var k) ? k.GetString() : null;
            var addresses = link.TryGetProperty("addr_info", out var addrs)
                ? addrs.EnumerateArray()
                    .Where(a => a.TryGetProperty("family", out var family) && family.GetString() == "inet")
                    .Select(a => $"{a.GetProperty("local").GetString()}/{a.GetProperty("prefixlen").GetInt32()}").ToList()
                : [];
            links.Add(new LabLinkStatus(
                link.GetProperty("ifname").GetString() ?? "",
                kind,
                flags.Contains("UP"),
                link.TryGetProperty("operstate", out var oper) ? oper.GetString() ?? "" : "",
                link.TryGetProperty("mtu", out var mtu) ? mtu.GetInt32() : 0,
                link.TryGetProperty("master", out var master) ? master.GetString() : null,
                addresses));
        }
        return links;
    }

    private static async Task<JumboFramePath> CheckPathAsync(LabPlan plan, int switchIndex, LabServer from, LabServer to, CancellationToken ct)
    {
        var bridge = LabPlan.StorageSwitches[switchIndex];
        var ns = plan.NamespaceOf(from);
        var target = LabPlan.AddressOf(plan.StorageSubnet(switchIndex), to).ToString();
        var full = await PingAsync(ns, target, plan.StorageMtu, count: 3, ct).ConfigureAwait(false);
        if (full.Passed)
            return new JumboFramePath(bridge, plan.NamespaceOf(from), plan.NamespaceOf(to), true, null, null);

        // The smallest link MTU on the path (both NICs, both switch ports, the bridge) is the likely answer: one ping confirms
        // it, instead of a dozen probes of up to a second each. Otherwise a binary search between the IPv4 minimum (68) and it.
        var sw = plan.SwitchNamespace;
        var hops = await Task.WhenAll(
            LinkMtuAsync(ns, $"eth{switchIndex}", ct), LinkMtuAsync(sw, $"{from.Name}-{bridge}", ct), LinkMtuAsync(sw, bridge, ct),
            LinkMtuAsync(sw, $"{to.Name}-{bridge}", ct), LinkMtuAsync(plan.NamespaceOf(to), $"eth{switchIndex}", ct)).ConfigureAwait(false);
        var smallest = hops.Where(m => m is not null).Select(m => m!.Value).DefaultIfEmpty(plan.StorageMtu).Min();
        if (smallest < plan.StorageMtu && smallest >= 68 && (await PingAsync(ns, target, smallest, count: 1, ct).ConfigureAwait(false)).Passed)
            return new JumboFramePath(bridge, ns, plan.NamespaceOf(to), false, smallest, full.Detail);
        int low = 68, high = Math.Min(smallest, plan.StorageMtu - 1);
        int? largest = null;
        while (low <= high)
        {
            var mid = low + ((high - low) / 2);
            if ((await PingAsync(ns, target, mid, count: 1, ct).ConfigureAwait(false)).Passed)
            {
                largest = mid;
                low = mid + 1;
            }
            else
            {
                high = mid - 1;
            }
        }
        return new JumboFramePath(bridge, ns, plan.NamespaceOf(to), false, largest, full.Detail);
    }

    private static async Task<int?> LinkMtuAsync(string ns, string device, CancellationToken ct)
    {
        var result = await Command.RunAsync("ip", ["-n", ns, "-j", "link", "show", "dev", device], s_ipTimeout, ct).ConfigureAwait(false);
        if (result.ExitCode != 0 || string.IsNullOrWhiteSpace(result.StdOut))
            return null;
        using var json = JsonDocument.Parse(result.StdOut);
        return json.RootElement.GetArrayLength() > 0 && json.RootElement[0].TryGetProperty("mtu", out var mtu) ? mtu.GetInt32() : null;
    }

    /// <summary>Pings with don't-fragment packets filling <paramref name="mtu"/> (ICMP payload = MTU - 20 IPv4 - 8 ICMP).</summary>
    private static async Task<(bool Passed, string? Detail)> PingAsync(string ns, string target, int mtu, int count, CancellationToken ct)
    {
        var result = await Command.RunAsync("ip",
            ["netns", "exec", ns, "ping", "-n", "-q", "-M", "do", "-s", Invariant(mtu - 28), "-c", Invariant(count), "-i", "0.2", "-W", "1", target],
            s_ipTimeout, ct).ConfigureAwait(false);
        if (result.ExitCode == 0)
            return (true, null);
        var detail = string.Join(' ', (result.StdErr + "\n" + result.StdOut).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => l.Contains("too long", StringComparison.Ordinal) || l.Contains("packet loss", StringComparison.Ordinal)).Distinct().Take(2));
        return (false, detail.Length == 0 ? $"ping exited with {result.ExitCode}" : detail);
    }

    private static async Task IpAsync(CancellationToken ct, params string[] args) =>
        (await Command.RunAsync("ip", args, s_ipTimeout, ct).ConfigureAwait(false)).EnsureSuccess();

    private static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);

    [GeneratedRegex("^[A-Za-z0-9._-]{1,15}$")]
    private static partial Regex TapName();
}
