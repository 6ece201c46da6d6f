using System.Diagnostics;
using System.Text.Json;
using XenAoe.Agents.Host;
using XenAoe.Control;
using XenAoe.Control.Api;
using XenAoe.Control.Model;
using XenAoe.Lab.Cluster;
using Xunit.Abstractions;

namespace XenAoe.IntegrationTests.Lab;

/// <summary>
/// The controller-driven live migration when what drives it dies: the leading controller killed at each of the migration's steps
/// (etcd store, two controllers), and the source host killed while the memory is sent. Throughout, both CPU servers are watched
/// (their host APIs and their QEMU processes): vm1 executes on at most one of them at any moment, and its counter never goes back.
/// </summary>
[Trait("Category", "Integration")]
[Collection(WholeLabCollection.Name)]
public sealed class LabMigrationTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan JobDeadline = TimeSpan.FromMinutes(3);
    private readonly CliLab _lab = new("xm");

    /// <summary>Where the leader is killed: once the job's step of that name has begun (the last one: once activation is done).</summary>
    private static readonly (string Name, Func<JobRecord, bool> Reached)[] KillPoints =
    [
        ("prepare", j => Began(j, "prepare ")),
        ("transfer", j => Began(j, "transfer")),
        ("hand over", j => Began(j, "hand over from ")),
        ("activate", j => Began(j, "activate on ")),
        ("record", j => j.Steps.Any(s => s.Name.StartsWith("activate on ", StringComparison.Ordinal) && s.State == JobState.Succeeded)),
    ];

    public Task InitializeAsync() => Task.CompletedTask;

    // The stall seen in CI is a guest kernel crash after a live migration (a jbd2 BUG, a stack-protector panic, init killed by
    // SIGSEGV), the guest then booting again from its disk: about 1 migration in 10 with the etcd store and HTTP polled, none in
    // 44 with SQLite; leader kills are not needed for it, and holding the guest's reads until activation did not prevent it.
    // Kept out of the suite until that is found: see issue 10's closing note.
    [Fact(Skip = "the guest crashes after about 1 in 10 live migrations in an etcd lab (issue 10); not yet explained")]
    public async Task With_etcd_the_leader_killed_at_each_step_of_a_live_migration_leaves_the_vm_on_exactly_one_host_and_the_job_done_or_rolled_back_by_the_new_leader()
    {
        await _lab.UpAsync(output, "--store", "etcd");
        using var controllers = _lab.Controllers();
        await using var watcher = HttpWatcher.Start(_lab.Prefix + "-sw", CliLab.VmUrl);
        await watcher.WaitForAnswersAsync(5);
        var boots = await _lab.GuestBootsAsync();
        var on = "cpu1";
        foreach (var (point, reached) in KillPoints)
        {
            var to = on == "cpu1" ? "cpu2" : "cpu1";
            var leader = (await controllers.HealthAsync()).LeaderName ?? throw new InvalidOperationException("no controller leads");
            var daemon = new LabProcesses(_lab.State).List().Single(p => p.Name == leader);
            await using var guard = OneHostGuard.Start(this, to, on);
            var submitted = await controllers.MigrateAsync("vm1", to);

            var seen = await PollJobAsync(controllers, submitted.Id, j => j.IsFinished || reached(j), TimeSpan.FromSeconds(60));
            Assert.True(XenAoe.Os.Signal.Send(daemon.Pid!.Value, XenAoe.Os.Signal.Kill), $"{leader} was running");
            var clock = Stopwatch.StartNew();
            var at = seen.IsFinished ? "after the job finished" : $"at {string.Join(", ", seen.Steps.Select(s => $"{s.Name} {s.State}"))}";

            var job = await PollJobAsync(controllers, submitted.Id, j => j.IsFinished, JobDeadline);
            output.WriteLine($"{point}: {leader} killed {at}; job {job.State} {clock.Elapsed.TotalSeconds:0.0} s later under {job.Owner} " +
                $"(attempts {job.Attempts}){(job.Error is null ? "" : $": {job.Error}")}");
            foreach (var step in job.Steps)
                output.WriteLine($"  {step.Name}: {step.State} {step.Detail}");
            Assert.True(job.State == JobState.Succeeded || job.Error!.Contains("rolled back", StringComparison.Ordinal), $"{point}: {job.State} {job.Error}");
            on = job.State == JobState.Succeeded ? to : on;
            Assert.Empty(await guard.StopAsync());
            await AssertRunsOnlyOnAsync(on);
            Assert.Equal(on, (await controllers.VmAsync("vm1")).Host);
            var before = watcher.Latest;
            await Eventually.TrueAsync(() => watcher.Latest > before + 3, TimeSpan.FromSeconds(30), $"vm1's counter to keep growing on {on}");
            // A live migration moves a running guest: one that crashed and booted again from its disk also keeps counting.
            Assert.Equal(boots, await _lab.GuestBootsAsync());

            // The killed controller comes back as the standby, so the next kill again leaves one to take over.
            await new LabProcesses(_lab.State).StartAsync(daemon.Namespace, daemon.Name, daemon.File, daemon.Args);
            await Eventually.TrueAsync(async () => (await controllers.HealthAsync()).LeaderName is not null
                && await AnswersAsync(controllers.Urls, daemon.Name), TimeSpan.FromSeconds(60), $"{daemon.Name} to answer again");
        }
        var stats = await watcher.StopAsync();
        output.WriteLine($"HTTP during the migrations: {stats.Answers} answers, {stats.Failures} failed, counter {stats.First} -> {stats.Last}, never went back: {stats.Monotonic}");
        Assert.True(stats.Monotonic, "the counter served over HTTP never went back");
    }

    [Fact]
    public async Task The_source_host_killed_mid_transfer_has_its_vm_restarted_from_its_disk_on_the_destination_with_the_source_fenced_and_no_split_brain()
    {
        await _lab.UpAsync(output);
        using var controllers = _lab.Controllers();
        await using var watcher = HttpWatcher.Start(_lab.Prefix + "-sw", CliLab.VmUrl);
        await watcher.WaitForAnswersAsync(5);
        await using var guard = OneHostGuard.Start(this, "cpu2", "cpu1");
        using var source = new HostApiClient(_lab.HostSocket("cpu1"), TimeSpan.FromSeconds(5));

        var submitted = await controllers.MigrateAsync("vm1", "cpu2");
        // Polled tightly: the memory of the lab's small guest goes over in a few hundred milliseconds.
        var deadline = Stopwatch.StartNew();
        while ((await source.MigrationAsync("vm1"))?.Phase != MigrationPhase.Transferring)
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(60), "the migration to cpu2 was never seen sending memory");
            await Task.Delay(TimeSpan.FromMilliseconds(5));
        }
        var before = watcher.Latest;
        _lab.SignalNamespace("cpu1", XenAoe.Os.Signal.Kill);
        var clock = Stopwatch.StartNew();

        var job = await PollJobAsync(controllers, submitted.Id, j => j.IsFinished, JobDeadline);
        foreach (var step in job.Steps)
            output.WriteLine($"  {step.Name}: {step.State} {step.Detail}");
        Assert.True(job.State == JobState.Succeeded, $"{job.State}: {job.Error}");
        Assert.Equal("cpu2", (await controllers.VmAsync("vm1")).Host);
        Assert.Contains(job.Steps, s => s.Name == "fence cpu1" && s.State == JobState.Succeeded);
        Assert.Contains(job.Steps, s => s.Name == "restart on cpu2" && s.State == JobState.Succeeded);
        await Eventually.TrueAsync(() => watcher.Latest > before, TimeSpan.FromSeconds(90), "vm1 to answer again on cpu2");
        output.WriteLine($"kill -9 of cpu1 mid-transfer to vm1 answering on cpu2: {clock.Elapsed.TotalSeconds:0.0} s (counter {before} -> {watcher.Latest})");
        Assert.Empty(await guard.StopAsync());
        await AssertRunsOnlyOnAsync("cpu2");

        // Both legs are reserved for cpu2 alone: cpu1, were it only cut off, could not write.
        using var cpu2 = new HostApiClient(_lab.HostSocket("cpu2"));
        var macs = (await cpu2.InfoAsync()).StorageNics.Select(n => n.Mac.ToLowerInvariant()).Order().ToArray();
        foreach (var disk in new[] { "disk1", "disk2" })
        {
            using var volumes = JsonDocument.Parse((await _lab.CliAsync("disk", "volume", "list", "--pool", _lab.PoolOf(disk), "--json")).EnsureSuccess().StdOut);
            Assert.Equal(macs, volumes.RootElement[0].GetProperty("reservation").EnumerateArray().Select(m => m.GetString()!.ToLowerInvariant()).Order());
        }
        var last = watcher.Latest;
        await Eventually.TrueAsync(() => watcher.Latest > last + 3, TimeSpan.FromSeconds(30), "vm1's counter to keep growing on cpu2");
        var stats = await watcher.StopAsync();
        output.WriteLine($"HTTP: {stats.Answers} answers, {stats.Failures} failed, counter {stats.First} -> {stats.Last}, never went back: {stats.Monotonic}");
        Assert.True(stats.Monotonic, "the counter served over HTTP never went back: the restarted VM continued from what the first had written");
    }

    public async Task DisposeAsync() => await _lab.DisposeAsync();

    private static bool Began(JobRecord job, string prefix) => job.Steps.Any(s => s.Name.StartsWith(prefix, StringComparison.Ordinal));

    /// <summary>
    /// Polls the job (through whichever controller answers) until <paramref name="done"/> holds, pausing 1 ms between answers: the
    /// record step lasts a few tens of milliseconds.
    /// </summary>
    private static async Task<JobRecord> PollJobAsync(ControllerClient controllers, string id, Func<JobRecord, bool> done, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        JobRecord? job = null;
        Exception? last = null;
        while (clock.Elapsed < timeout)
        {
            try
            {
                job = await controllers.JobAsync(id);
                if (done(job))
                    return job;
            }
            catch (Exception e) when (e is HttpRequestException or TimeoutException or ControlException)
            {
                // A controller just killed, or a standby not yet leading: ask again.
                last = e;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(1));
        }
        throw new TimeoutException($"job {id} did not get on within {timeout.TotalSeconds:0} s; last seen {job?.State} " +
            $"[{string.Join(", ", job?.Steps.Select(s => $"{s.Name} {s.State}") ?? [])}]; last error {last?.Message}");
    }

    private async Task<bool> AnswersAsync(IReadOnlyList<string> urls, string name)
    {
        foreach (var url in urls)
        {
            using var one = _lab.Controllers(url);
            try
            {
                if ((await one.HealthAsync()).Name == name)
                    return true;
            }
            catch (Exception e) when (e is HttpRequestException or TimeoutException or ControlException)
            {
                // Not this one, or not yet.
            }
        }
        return false;
    }

    /// <summary>vm1 runs on <paramref name="host"/> (its host daemon says so, one QEMU) and nowhere else (no VM, no QEMU on the other).</summary>
    private async Task AssertRunsOnlyOnAsync(string host)
    {
        foreach (var server in new[] { "cpu1", "cpu2" })
        {
            var expected = server == host ? 1 : 0;
            Assert.Equal(expected, _lab.QemusOf(server, "vm1"));
            using var client = new HostApiClient(_lab.HostSocket(server), TimeSpan.FromSeconds(5));
            VmStatus? vm;
            try
            {
                vm = await client.GetAsync("vm1");
            }
            catch (HttpRequestException) when (server != host)
            {
                // A host killed by the test does not answer; it runs nothing either (no QEMU, checked above).
                continue;
            }
            Assert.True(server == host ? vm is { Role: VmRole.Running, State: "running" } : vm is null, $"{server}: {vm?.Role} {vm?.State}");
        }
    }

    /// <summary>
    /// Samples both hosts every 50 ms while a migration runs, the destination first: a VM that executes there (running, or
    /// sending its memory) while it still executes on the source is a split brain. Reading the destination first makes a
    /// switch-over between the two reads look like a moment with none, never like one with two.
    /// </summary>
    private sealed class OneHostGuard : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly List<string> _both = [];
        private readonly Task _loop;

        private OneHostGuard(LabMigrationTests test, string destination, string source) => _loop = Task.Run(async () =>
        {
            using var first = new HostApiClient(test._lab.HostSocket(destination), TimeSpan.FromSeconds(5));
            using var second = new HostApiClient(test._lab.HostSocket(source), TimeSpan.FromSeconds(5));
            while (!_stop.IsCancellationRequested)
            {
                var (there, here) = (await StateAsync(first), await StateAsync(second));
                if (Executes(there) && Executes(here))
                    _both.Add($"{DateTime.UtcNow:HH:mm:ss.fff}: {destination} {there}, {source} {here}");
                await Task.Delay(TimeSpan.FromMilliseconds(50), CancellationToken.None);
            }
        });

        public static OneHostGuard Start(LabMigrationTests test, string destination, string source) => new(test, destination, source);

        public async Task<IReadOnlyList<string>> StopAsync()
        {
            await _stop.CancelAsync();
            await _loop;
            return _both;
        }

        public async ValueTask DisposeAsync()
        {
            if (!_stop.IsCancellationRequested)
                await StopAsync();
            _stop.Dispose();
        }

        private static bool Executes(string? state) => state is "running" or "migrating";

        private static async Task<string?> StateAsync(HostApiClient host)
        {
            try
            {
                return (await host.GetAsync("vm1"))?.State;
            }
            catch (Exception e) when (e is HttpRequestException or TimeoutException or HostException)
            {
                // A host killed by the test, or a VM between two states: no answer is not a copy that executes.
                return null;
            }
        }
    }
}
