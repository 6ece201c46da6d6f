using System.Text.Json;
using XenAoe.Lab.Cluster;

namespace XenAoe.IntegrationTests.Lab;

[Trait("Category", "Integration")]
public sealed class LabNetworkTests
{
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Up_builds_every_namespace_switch_and_link_with_its_MTU_and_addresses_and_refuses_a_second_lab()
    {
        await using var lab = await ClusterLab.UpAsync(disks: 2, cpus: 2);
        var plan = lab.Plan;
        var sw = plan.SwitchNamespace;
        Assert.Equal([$"{plan.Prefix}-cpu1", $"{plan.Prefix}-cpu2", $"{plan.Prefix}-disk1", $"{plan.Prefix}-disk2", sw],
            (await lab.NamespacesWithPrefixAsync()).Order(StringComparer.Ordinal));
        Assert.True(lab.Progress.Count > 5);
        Assert.All(lab.Progress, p => Assert.Equal(lab.Progress.Count, p.Total));
        Assert.Equal(Enumerable.Range(1, lab.Progress.Count), lab.Progress.Select(p => p.Step));

        foreach (var (bridge, mtu) in new[] { ("san0", 9000), ("san1", 9000), ("mgmt", 1500), ("vmnet", 1500) })
        {
            var link = await lab.LinkAsync(sw, bridge);
            Assert.Equal(mtu, link.GetProperty("mtu").GetInt32());
            Assert.Equal("bridge", link.GetProperty("linkinfo").GetProperty("info_kind").GetString());
            Assert.Equal(0, link.GetProperty("linkinfo").GetProperty("info_data").GetProperty("stp_state").GetInt32());
        }
        Assert.Contains("10.77.0.1/24", Addresses(await lab.LinkAsync(sw, "mgmt")));
        Assert.Contains("10.77.1.1/24", Addresses(await lab.LinkAsync(sw, "vmnet")));
        Assert.Equal("UP", (await lab.LinkAsync(sw, "lo")).GetProperty("flags").EnumerateArray().Select(f => f.GetString()).Single(f => f == "UP"));

        foreach (var server in plan.Servers)
        {
            var ns = plan.NamespaceOf(server);
            var host = server.Role == LabRole.Disk ? 10 + server.Number : 20 + server.Number;
            Assert.Equal(9000, (await lab.LinkAsync(ns, "eth0")).GetProperty("mtu").GetInt32());
            Assert.Equal(9000, (await lab.LinkAsync(ns, "eth1")).GetProperty("mtu").GetInt32());
            Assert.Equal("san1", (await lab.LinkAsync(sw, $"{server.Name}-san1")).GetProperty("master").GetString());
            var mgmt = await lab.LinkAsync(ns, "mgmt0");
            Assert.Equal(1500, mgmt.GetProperty("mtu").GetInt32());
            Assert.Contains($"10.77.0.{host}/24", Addresses(mgmt));
            (await lab.RunInAsync(sw, "ping", "-n", "-c", "1", "-W", "2", $"10.77.0.{host}")).EnsureSuccess();
            if (server.Role == LabRole.Cpu)
            {
                Assert.Equal("vmbr0", (await lab.LinkAsync(ns, "vmup0")).GetProperty("master").GetString());
                Assert.Equal("vmnet", (await lab.LinkAsync(sw, $"{server.Name}-vmnet")).GetProperty("master").GetString());
            }
        }

        var disk1 = lab.Ns(LabRole.Disk, 1);
        (await lab.RunInAsync(disk1, "ping", "-n", "-c", "1", "-W", "2", "10.77.0.21")).EnsureSuccess();
        // Full jumbo frames, not fragmentable, from a disk server to a CPU server across each storage switch.
        (await lab.RunInAsync(disk1, "ping", "-n", "-M", "do", "-s", "8972", "-c", "1", "-W", "2", "10.77.2.21")).EnsureSuccess();
        (await lab.RunInAsync(disk1, "ping", "-n", "-M", "do", "-s", "8972", "-c", "1", "-W", "2", "10.77.3.22")).EnsureSuccess();

        var status = await LabNetwork.StatusAsync(lab.StateDirectory);
        Assert.True(status.Exists);
        Assert.Equal("up", status.Phase);
        Assert.Equal(5, status.Namespaces.Count(n => n.Exists && n.Recorded));
        Assert.Contains(status.Namespaces.Single(n => n.Name == disk1).Links, l => l is { Name: "eth0", Up: true, Mtu: 9000, OperState: "UP" });
        Assert.Contains("\"namespaces\"", JsonSerializer.Serialize(status, LabJsonContext.Default.LabStatus));

        var again = await Assert.ThrowsAsync<LabException>(() => LabNetwork.UpAsync(lab.Plan));
        Assert.Contains("xenaoe lab down", again.Message);
        var sameNamesOtherState = await Assert.ThrowsAsync<LabException>(() => LabNetwork.UpAsync(lab.Plan with { StateDirectory = lab.StateDirectory + "-other" }));
        Assert.Contains("xenaoe lab down", sameNamesOtherState.Message);
        Directory.Delete(lab.StateDirectory + "-other", recursive: true);
        // The refused attempts left the lab as it was.
        (await lab.RunInAsync(disk1, "ping", "-n", "-c", "1", "-W", "2", "10.77.0.22")).EnsureSuccess();
    }

    [Fact]
    public async Task The_jumbo_frame_check_passes_and_names_the_path_and_its_MTU_when_one_veth_is_set_to_1500()
    {
        await using var lab = await ClusterLab.UpAsync(disks: 2, cpus: 1);
        var report = await LabNetwork.CheckJumboFramesAsync(lab.StateDirectory);
        Assert.True(report.Passed, report.ToString());
        Assert.Equal(6, report.Paths.Count); // 3 pairs on each of 2 switches

        var disk1 = lab.Ns(LabRole.Disk, 1);
        (await Command.RunAsync("ip", "-n", disk1, "link", "set", "eth0", "mtu", "1500")).EnsureSuccess();
        report = await LabNetwork.CheckJumboFramesAsync(lab.StateDirectory);
        Assert.False(report.Passed);
        var failures = report.Failures.ToList();
        Assert.Equal(2, failures.Count);
        Assert.All(failures, f =>
        {
            Assert.Equal("san0", f.Switch);
            Assert.Equal(disk1, f.From);
            Assert.Equal(1500, f.LargestMtu);
        });
        Assert.Contains($"san0: {disk1} -> ", report.ToString());
    }

    [Fact]
    public async Task A_TAP_created_in_a_CPU_server_is_attached_to_vmbr0_at_MTU_1500_and_deleted_again()
    {
        await using var lab = await ClusterLab.UpAsync(disks: 1, cpus: 2);
        var cpu2 = lab.Ns(LabRole.Cpu, 2);
        await LabNetwork.CreateTapAsync(lab.StateDirectory, 2, "vm1-nic0");
        var tap = await lab.LinkAsync(cpu2, "vm1-nic0");
        Assert.Equal("vmbr0", tap.GetProperty("master").GetString());
        Assert.Equal(1500, tap.GetProperty("mtu").GetInt32());
        Assert.Equal("tun", tap.GetProperty("linkinfo").GetProperty("info_kind").GetString());
        Assert.Contains((await LabNetwork.StatusAsync(lab.StateDirectory)).Taps, t => t is { Name: "vm1-nic0", Exists: true });
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => LabNetwork.CreateTapAsync(lab.StateDirectory, 3, "vm2-nic0"));

        Assert.True(await LabNetwork.DeleteTapAsync(lab.StateDirectory, 2, "vm1-nic0"));
        Assert.NotEqual(0, (await Command.RunAsync("ip", "-n", cpu2, "link", "show", "vm1-nic0")).ExitCode);
        Assert.False(await LabNetwork.DeleteTapAsync(lab.StateDirectory, 2, "vm1-nic0"));
        // One left for down to remove.
        await LabNetwork.CreateTapAsync(lab.StateDirectory, 1, "vm3-nic0");
    }

    [Fact]
    public async Task A_daemon_started_through_LabProcesses_runs_detached_in_its_namespace_and_down_stops_it()
    {
        var lab = await ClusterLab.UpAsync(disks: 1, cpus: 1);
        await using (lab)
        {
            var processes = new LabProcesses(lab.StateDirectory);
            var cpu1 = lab.Ns(LabRole.Cpu, 1);
            var daemon = await processes.StartAsync(cpu1, "host-agent", "sh", ["-c", "echo agent up; exec sleep 600"]);
            var pid = daemon.Pid!.Value;
            Assert.True(LabProcesses.IsRunning(daemon));
            // setsid, sh and `ip netns exec` exec in place: the recorded pid enters the namespace a moment after the start.
            await Eventually.TrueAsync(async () => (await Command.RunAsync("ip", "netns", "identify", $"{pid}")).StdOut.Trim() == cpu1, s_wait,
                $"pid {pid} to run inside {cpu1}");
            // Its own session: field 6 of /proc/PID/stat (session id) is its pid.
            Assert.Equal($"{pid}", (await File.ReadAllTextAsync($"/proc/{pid}/stat")).Split(')')[^1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[3]);
            await Eventually.TrueAsync(() => File.Exists(daemon.LogFile) && File.ReadAllText(daemon.LogFile).Contains("agent up"), s_wait,
                $"{daemon.LogFile} to hold the daemon's output");
            Assert.StartsWith(lab.StateDirectory, daemon.LogFile);
            await Assert.ThrowsAsync<LabException>(() => processes.StartAsync(cpu1, "host-agent", "sleep", ["1"]));
            await Assert.ThrowsAsync<LabException>(() => processes.StartAsync("not-a-lab-ns", "other", "sleep", ["1"]));

            var status = await LabNetwork.StatusAsync(lab.StateDirectory);
            Assert.Contains(status.Processes, p => p is { Name: "host-agent", Alive: true } && p.Pid == pid);

            var report = await LabNetwork.DownAsync(lab.StateDirectory);
            Assert.True(report.Succeeded, string.Join('\n', report.Problems));
            Assert.Contains($"daemon host-agent (pid {pid})", report.Removed);
            Assert.False(LabProcesses.IsRunning(daemon));
            Assert.Empty(await lab.NamespacesWithPrefixAsync());
            Assert.False(File.Exists(Path.Combine(lab.StateDirectory, LabStateFile.FileName)));
        }
    }

    [Fact]
    public async Task Down_after_a_crash_removes_recorded_and_unrecorded_namespaces_and_every_process_in_them()
    {
        await using var lab = await ClusterLab.UpAsync(disks: 1, cpus: 1);
        var processes = new LabProcesses(lab.StateDirectory);
        var disk1 = lab.Ns(LabRole.Disk, 1);
        var recorded = await processes.StartAsync(disk1, "disk-agent", "sleep", ["600"]);
        // A process whose start never got confirmed, and a namespace made after the last state write (a crash mid-step).
        var unrecordedPid = ClusterLab.StartOutside("ip", "netns", "exec", lab.Ns(LabRole.Cpu, 1), "sleep", "600");
        var strayNs = $"{lab.Plan.Prefix}-disk2";
        (await Command.RunAsync("ip", "netns", "add", strayNs)).EnsureSuccess();
        var strayPid = ClusterLab.StartOutside("ip", "netns", "exec", strayNs, "sleep", "600");
        await using (var file = await LabStateFile.OpenAsync(lab.StateDirectory, createDirectory: false))
        {
            file.State!.Phase = "building";
            file.State.Processes.Add(new LabProcessEntry { Name = "qemu-vm1", Namespace = lab.Ns(LabRole.Cpu, 1), File = "sleep", State = LabEntryState.Intended });
            await file.SaveAsync();
        }
        // A namespace that only looks similar is not the lab's and must survive.
        var neighbour = $"{lab.Plan.Prefix}-diskette";
        (await Command.RunAsync("ip", "netns", "add", neighbour)).EnsureSuccess();
        try
        {
            await Eventually.TrueAsync(async () => (await Command.RunAsync("ip", "netns", "pids", strayNs)).StdOut.Contains($"{strayPid}"), s_wait,
                $"pid {strayPid} to run inside {strayNs}");
            await Eventually.TrueAsync(async () => (await Command.RunAsync("ip", "netns", "identify", $"{unrecordedPid}")).StdOut.Trim() == lab.Ns(LabRole.Cpu, 1),
                s_wait, $"pid {unrecordedPid} to run inside {lab.Ns(LabRole.Cpu, 1)}");

            // The builder is gone; a fresh `down` works from the record and the names alone.
            var report = await LabNetwork.DownAsync(lab.StateDirectory, prefix: "xa");
            Assert.True(report.Succeeded, string.Join('\n', report.Problems));
            Assert.True(report.LabFound);
            Assert.Equal([neighbour], await lab.NamespacesWithPrefixAsync());
            Assert.False(LabProcesses.IsRunning(recorded));
            await Eventually.TrueAsync(() => ProcStat.Read(unrecordedPid) is not { Running: true } && ProcStat.Read(strayPid) is not { Running: true },
                s_wait, "the processes inside the lab's namespaces to be gone");
            Assert.Contains(report.Removed, r => r == $"namespace {strayNs}");
        }
        finally
        {
            await Command.RunAsync("ip", "netns", "del", neighbour);
        }
    }

    [Fact]
    public async Task Down_leaves_alone_a_recorded_pid_that_an_unrelated_process_now_uses()
    {
        await using var lab = await ClusterLab.UpAsync(disks: 1, cpus: 1);
        var processes = new LabProcesses(lab.StateDirectory);
        var daemon = await processes.StartAsync(lab.Ns(LabRole.Disk, 1), "disk-agent", "sleep", ["600"]);
        Assert.True(await processes.StopAsync("disk-agent", TimeSpan.FromSeconds(5)));
        Assert.False(LabProcesses.IsRunning(daemon));

        // Pid reuse cannot be forced: give the record an unrelated live process's pid with the old start time. Start times
        // count clock ticks (10 ms), so the unrelated process starts a tick later, as a real reuse of the pid would.
        await Eventually.TrueAsync(() => UptimeTicks() > daemon.StartTime!.Value + 1, s_wait, "the clock to pass the daemon's start tick");
        var unrelated = ClusterLab.StartOutside("sleep", "600");
        try
        {
            await Eventually.TrueAsync(() => ProcStat.Read(unrelated) is { Running: true }, s_wait, $"pid {unrelated} to run");
            await using (var file = await LabStateFile.OpenAsync(lab.StateDirectory, createDirectory: false))
            {
                daemon.Pid = unrelated;
                file.State!.Processes.Add(daemon);
                await file.SaveAsync();
            }
            Assert.False((await LabNetwork.StatusAsync(lab.StateDirectory)).Processes.Single().Alive);

            var report = await LabNetwork.DownAsync(lab.StateDirectory);
            Assert.True(report.Succeeded, string.Join('\n', report.Problems));
            Assert.True(ProcStat.Read(unrelated) is { Running: true }, $"down killed pid {unrelated}, which the lab never started");
        }
        finally
        {
            Signal.Send(unrelated, Signal.Kill);
        }
    }

    [Fact]
    public async Task Down_with_no_lab_says_so_and_down_twice_is_fine()
    {
        var plan = ClusterLab.NewPlan(disks: 1, cpus: 1);
        var progress = new List<LabProgress>();
        var nothing = await LabNetwork.DownAsync(plan.StateDirectory, new InlineProgress(progress), plan.Prefix);
        Assert.False(nothing.LabFound);
        Assert.True(nothing.Succeeded);
        Assert.Contains("no lab", progress.Single().Message);
        Assert.False(Directory.Exists(plan.StateDirectory));
        Assert.False((await LabNetwork.StatusAsync(plan.StateDirectory, plan.Prefix)).Exists);

        await using var lab = await ClusterLab.UpAsync(disks: 1, cpus: 1);
        var first = await LabNetwork.DownAsync(lab.StateDirectory);
        Assert.True(first.LabFound);
        Assert.True(first.Succeeded, string.Join('\n', first.Problems));
        var second = await LabNetwork.DownAsync(lab.StateDirectory, prefix: lab.Plan.Prefix);
        Assert.False(second.LabFound);
        Assert.True(second.Succeeded);
        Assert.Empty(await lab.NamespacesWithPrefixAsync());
    }

    [Fact]
    public void A_plan_with_bad_values_lists_every_problem()
    {
        var bad = new LabPlan { DiskServers = 0, Prefix = "Bad-Prefix", StorageMtu = 100, VmSubnet = System.Net.IPNetwork.Parse("10.77.0.0/25") };
        var error = Assert.Throws<ArgumentException>(() => bad.Validate());
        Assert.Contains("disk servers", error.Message);
        Assert.Contains("prefix", error.Message);
        Assert.Contains("storage MTU", error.Message);
        Assert.Contains("overlap", error.Message);
        Assert.True(LabPlan.IsLabNamespace("xa", "xa-cpu12"));
        Assert.False(LabPlan.IsLabNamespace("xa", "xa-cpu"));
        Assert.False(LabPlan.IsLabNamespace("xa", "xab-sw"));
        Assert.Equal("10.77.0.23", LabPlan.AddressOf(new LabPlan().ManagementSubnet, new LabServer(LabRole.Cpu, 3)).ToString());
    }

    /// <summary>Seconds since boot from /proc/uptime in hundredths: clock ticks at the usual USER_HZ of 100.</summary>
    private static ulong UptimeTicks() =>
        (ulong)(double.Parse(File.ReadAllText("/proc/uptime").Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 100);

    private static List<string> Addresses(JsonElement link) =>
        [.. link.GetProperty("addr_info").EnumerateArray()
            .Where(a => a.GetProperty("family").GetString() == "inet")
            .Select(a => $"{a.GetProperty("local").GetString()}/{a.GetProperty("prefixlen").GetInt32()}")];

    private sealed class InlineProgress(List<LabProgress> steps) : IProgress<LabProgress>
    {
        public void Report(LabProgress value) => steps.Add(value);
    }
}
