using System.Diagnostics;
using System.Text.Json;
using Xunit.Abstractions;

namespace XenAoe.IntegrationTests.Lab;

/// <summary>
/// High availability on the lab, driven as a user would: a CPU server dies (kill -9) or freezes (SIGSTOP); the controller
/// declares it dead, fences it at both disk servers and restarts its VM on the other CPU server; a frozen one that wakes up
/// has every write refused (AoE error 6) and its stale VM killed; the disk is not corrupted. In etcd mode, killing the leading
/// controller mid-job hands the job to the standby.
/// </summary>
[Trait("Category", "Integration")]
[Collection(WholeLabCollection.Name)]
public sealed class LabFailoverTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan FailoverDeadline = TimeSpan.FromSeconds(60);
    private readonly CliLab _lab = new("xf");

    public Task InitializeAsync() => Task.CompletedTask;

    [Fact]
    public async Task A_cpu_server_killed_has_its_vm_restarted_on_the_other_one_with_its_counter_intact()
    {
        await _lab.UpAsync(output);
        var before = await _lab.CounterAfterAsync(3);
        var clock = Stopwatch.StartNew();
        _lab.SignalNamespace("cpu1", XenAoe.Os.Signal.Kill);
        var after = await WaitForVmOnAsync("cpu2", before);
        output.WriteLine($"kill -9 of cpu1 to vm1 answering on cpu2: {clock.Elapsed.TotalSeconds:0.0} s (counter {before} -> {after})");
        Assert.True(after >= before, $"the counter went back from {before} to {after}");
        await CheckJobAsync("vm-failover");
    }

    [Fact]
    public async Task A_frozen_cpu_server_is_fenced_its_vm_restarts_elsewhere_and_once_thawed_its_writes_are_refused_and_nothing_is_corrupted()
    {
        await _lab.UpAsync(output);
        var before = await _lab.CounterAfterAsync(3);
        var refusedBefore = await ReservedRefusalsAsync();
        var clock = Stopwatch.StartNew();
        var frozen = _lab.SignalNamespace("cpu1", XenAoe.Os.Signal.Stop);
        var after = await WaitForVmOnAsync("cpu2", before);
        output.WriteLine($"SIGSTOP of cpu1 to vm1 answering on cpu2: {clock.Elapsed.TotalSeconds:0.0} s (counter {before} -> {after})");

        foreach (var pid in frozen)
            XenAoe.Os.Signal.Send(pid, XenAoe.Os.Signal.Continue);
        // The thawed guest keeps writing its counter every 200 ms until the controller, hearing cpu1 again, kills it.
        await Eventually.TrueAsync(async () => await ReservedRefusalsAsync() > refusedBefore, TimeSpan.FromSeconds(30),
            "the thawed host's writes to be refused by the disk servers (AoE error 6)");
        await Eventually.TrueAsync(async () => await ListOnHostAsync("cpu1") == 0, TimeSpan.FromSeconds(30), "the stale vm1 on cpu1 to be killed");
        output.WriteLine($"reservation refusals at the disk servers: {refusedBefore} -> {await ReservedRefusalsAsync()}");

        Assert.Contains("\"host\":\"cpu2\"", (await _lab.CliAsync("vm", "list", "--json")).EnsureSuccess().StdOut, StringComparison.Ordinal);
        var later = await _lab.CounterAfterAsync(after + 5);

        await _lab.StopAndCheckDiskAsync(output, later);
    }

    [Fact]
    public async Task A_disk_server_down_during_a_failover_is_fenced_as_soon_as_it_returns_and_its_leg_rejoins()
    {
        await _lab.UpAsync(output);
        var before = await _lab.CounterAfterAsync(3);
        Assert.True(XenAoe.Os.Signal.Send(await _lab.DaemonPidAsync("disk2"), XenAoe.Os.Signal.Kill), "disk2's daemon was running");
        _lab.SignalNamespace("cpu1", XenAoe.Os.Signal.Kill);
        await WaitForVmOnAsync("cpu2", before);
        using (var jobs = JsonDocument.Parse((await _lab.CliAsync("job", "list", "--json")).EnsureSuccess().StdOut))
        {
            var failover = jobs.RootElement.EnumerateArray().Last(j => j.GetProperty("kind").GetString() == "vm-failover");
            Assert.Contains(failover.GetProperty("log").EnumerateArray(), l => l.GetProperty("text").GetString()!.Contains("applied when disk2 answers again", StringComparison.Ordinal));
        }

        // disk2 comes back (its pool and token as the lab gave them): the controller pays the fence it owes at once.
        var pool = _lab.PoolOf("disk2");
        var serve = await Command.RunAsync("setsid", ["sh", "-c", "exec \"$@\" >>\"$0\" 2>&1 </dev/null &", Path.Combine(_lab.State, "logs", "disk2-again.log"),
            "ip", "netns", "exec", $"{_lab.Prefix}-disk2", "dotnet", DiskServer.DiskServerHost.CliDll, "disk", "serve", "--pool", pool, "-i", "eth0", "-i", "eth1",
            "--spin-us", "0", "--listen", "10.77.0.12:7200", "--token-file", Path.Combine(_lab.State, "controller", "token")]);
        serve.EnsureSuccess();
        using var cpu2 = new XenAoe.Agents.Host.HostApiClient(_lab.HostSocket("cpu2"));
        var cpu2Macs = (await cpu2.InfoAsync()).StorageNics.Select(n => n.Mac.ToLowerInvariant()).Order().ToArray();
        string[] holders = [];
        try
        {
            await Eventually.TrueAsync(async () =>
            {
                var listing = await _lab.CliAsync("disk", "volume", "list", "--pool", pool, "--json");
                if (!listing.Succeeded)
                    return false;
                using var volumes = JsonDocument.Parse(listing.StdOut);
                holders = [.. volumes.RootElement[0].GetProperty("reservation").EnumerateArray().Select(m => m.GetString()!.ToLowerInvariant()).Order()];
                return holders.SequenceEqual(cpu2Macs);
            }, TimeSpan.FromSeconds(30), "disk2's leg of vm1 to be reserved for cpu2 alone");
        }
        catch (TimeoutException)
        {
            // Seen once (2026-11-22) and not explained: say who holds the leg and what the daemons logged.
            output.WriteLine($"reservation now: [{string.Join(", ", holders)}]; cpu2: [{string.Join(", ", cpu2Macs)}]");
            _lab.WriteLogTails(output, "disk2-again", "controller1", "cpu2");
            throw;
        }
        await Eventually.TrueAsync(async () => (await cpu2.GetAsync("vm1"))?.Disks[0].Health == XenAoe.Agents.Host.DiskHealth.Healthy, TimeSpan.FromSeconds(60),
            "vm1's mirror to take disk2's leg back");
        await _lab.CounterAfterAsync(before + 5);
    }

    [Fact]
    public async Task With_etcd_the_standby_controller_takes_over_when_the_leader_dies_and_finishes_its_job()
    {
        await _lab.UpAsync(output, "--store", "etcd");
        using var status = JsonDocument.Parse((await _lab.CliAsync("controller", "status", "--json")).EnsureSuccess().StdOut);
        var leader = status.RootElement.GetProperty("leaderName").GetString()!;
        var pid = await _lab.DaemonPidAsync(leader);

        var job = JsonDocument.Parse((await _lab.CliAsync("vm", "migrate", "vm1", "--to", "cpu2", "--no-wait", "--json")).EnsureSuccess().StdOut).RootElement.GetProperty("id").GetString()!;
        Assert.True(XenAoe.Os.Signal.Send(pid, XenAoe.Os.Signal.Kill), $"{leader} was running");
        var clock = Stopwatch.StartNew();
        string? newLeader = null;
        await Eventually.TrueAsync(async () =>
        {
            var result = await _lab.CliAsync("controller", "status", "--json");
            if (!result.Succeeded)
                return false;
            using var now = JsonDocument.Parse(result.StdOut);
            newLeader = now.RootElement.GetProperty("leaderName").GetString();
            return newLeader is not null && newLeader != leader;
        }, TimeSpan.FromSeconds(30), "the standby controller to lead");
        output.WriteLine($"{leader} killed; {newLeader} leads after {clock.Elapsed.TotalSeconds:0.0} s");

        var watched = await _lab.CliAsync("job", "watch", job);
        output.WriteLine(watched.StdOut + watched.StdErr);
        watched.EnsureSuccess();
        using var shown = JsonDocument.Parse((await _lab.CliAsync("job", "show", job, "--json")).EnsureSuccess().StdOut);
        output.WriteLine($"job {job}: owner {shown.RootElement.GetProperty("owner")}, attempts {shown.RootElement.GetProperty("attempts")}");
        using var vm = JsonDocument.Parse((await _lab.CliAsync("vm", "show", "vm1", "--json")).EnsureSuccess().StdOut);
        Assert.Contains("cpu2", vm.RootElement.ToString(), StringComparison.Ordinal);
        await _lab.CounterAfterAsync(1);
    }

    /// <summary>Waits until the controller places vm1 on <paramref name="host"/> and it answers with a counter not below <paramref name="floor"/>.</summary>
    private async Task<long> WaitForVmOnAsync(string host, long floor)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < FailoverDeadline)
        {
            if (await _lab.CounterAsync() is { } counter && (await _lab.CliAsync("vm", "list", "--json")).StdOut.Contains($"\"host\":\"{host}\"", StringComparison.Ordinal))
            {
                Assert.True(counter >= floor, $"vm1 answered {counter} on {host}, below the {floor} it had reached before the failure");
                return counter;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(100));
        }
        var jobs = await _lab.CliAsync("job", "list");
        throw new TimeoutException($"vm1 did not come back on {host} within {FailoverDeadline.TotalSeconds} s; jobs:\n{jobs.StdOut}{jobs.StdErr}");
    }

    private async Task CheckJobAsync(string kind)
    {
        using var jobs = JsonDocument.Parse((await _lab.CliAsync("job", "list", "--json")).EnsureSuccess().StdOut);
        var failover = jobs.RootElement.EnumerateArray().Last(j => j.GetProperty("kind").GetString() == kind);
        Assert.Equal("Succeeded", failover.GetProperty("state").GetString());
        var steps = failover.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("name").GetString()).ToList();
        Assert.Equal(["place", "fence", "start"], steps);
    }

    private async Task<long> ReservedRefusalsAsync()
    {
        long total = 0;
        foreach (var disk in new[] { "disk1", "disk2" })
        {
            var counters = (await _lab.CliAsync("disk", "counters", "--pool", _lab.PoolOf(disk), "--json")).EnsureSuccess().StdOut;
            total += JsonSerializer.Deserialize<Dictionary<string, long>>(counters)!["reserved"];
        }
        return total;
    }

    private async Task<int> ListOnHostAsync(string host)
    {
        using var client = new XenAoe.Agents.Host.HostApiClient(_lab.HostSocket(host), TimeSpan.FromSeconds(5));
        return (await client.ListAsync()).Count;
    }

    public async Task DisposeAsync() => await _lab.DisposeAsync();
}
