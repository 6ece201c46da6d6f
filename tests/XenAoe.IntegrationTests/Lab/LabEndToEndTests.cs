using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using XenAoe.Agents.Host;
using Xunit.Abstractions;

namespace XenAoe.IntegrationTests.Lab;

/// <summary>
/// The whole product as a user drives it: `xenaoe lab up` builds the cluster and boots vm1 from its mirrored disk, the serial
/// console answers, the VM live-migrates back and forth while it writes and serves HTTP, survives a disk server killed during a
/// migration, and `xenaoe lab down` leaves nothing behind.
/// </summary>
[Trait("Category", "Integration")]
[Collection(WholeLabCollection.Name)]
public sealed class LabEndToEndTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly CliLab _lab = new("xe");

    public Task InitializeAsync() => Task.CompletedTask;

    [Fact]
    public async Task A_vm_boots_from_its_mirror_answers_on_its_console_and_migrates_under_load_even_when_a_disk_server_dies()
    {
        var clock = Stopwatch.StartNew();
        var up = await _lab.UpAsync(output);
        output.WriteLine($"lab up took {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.Contains($"vm1 answers at {CliLab.VmUrl}", up.StdOut);

        // The guest answers HTTP a moment before busybox init has its serial shell up: what is typed before that is lost.
        await Eventually.TrueAsync(async () => (await _lab.CliAsync(TimeSpan.FromSeconds(60), ["console", "vm1"], input: "echo marker-$((40+2))\n")).StdOut.Contains("marker-42"),
            TimeSpan.FromSeconds(60), "the serial console to answer a typed command");

        // More write load than the counter's: a loop rewriting 2 MiB with fsync, reporting any failure on the console.
        (await _lab.CliAsync(TimeSpan.FromSeconds(60), ["console", "vm1"],
            input: "(while true; do dd if=/dev/urandom of=/root/load bs=64k count=32 conv=fsync 2>/dev/null || echo XENAOE-LOAD-ERROR > /dev/console; done) &\n"))
            .EnsureSuccess();

        await using var watcher = HttpWatcher.Start(_lab.Prefix + "-sw", CliLab.VmUrl);
        await watcher.WaitForAnswersAsync(5);

        var reports = new List<JsonElement>();
        foreach (var to in new[] { "cpu2", "cpu1", "cpu2" })
            reports.Add(await MigrateAsync(to));

        // A disk server dies while the VM's memory is being sent: the VM arrives, its mirror degraded, and keeps writing.
        var disk2 = await _lab.DaemonPidAsync("disk2");
        using (var source = new HostApiClient(_lab.HostSocket("cpu2")))
        {
            var migration = MigrateAsync("cpu1");
            // Polled tightly: the memory goes over in a few hundred milliseconds.
            var deadline = Stopwatch.StartNew();
            while ((await source.MigrationAsync("vm1"))?.Phase != XenAoe.Agents.Host.MigrationPhase.Transferring)
            {
                Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(30) && !migration.IsCompleted, "the migration to cpu1 was never seen sending memory");
                await Task.Delay(TimeSpan.FromMilliseconds(5));
            }
            Assert.True(XenAoe.Os.Signal.Send(disk2, XenAoe.Os.Signal.Kill), "disk2's daemon was running");
            reports.Add(await migration);
        }

        var before = watcher.Latest;
        await watcher.WaitForAnswersAsync(10);
        await Eventually.TrueAsync(() => watcher.Latest > before + 5, TimeSpan.FromSeconds(30), "the counter to keep growing after the last migration");
        var show = await _lab.CliAsync("vm", "show", "vm1", "--json");
        using (var vm = JsonDocument.Parse(show.EnsureSuccess().StdOut))
            Assert.Equal("degraded", vm.RootElement.GetProperty("disks")[0].GetProperty("health").GetString());

        var stats = await watcher.StopAsync();
        output.WriteLine($"HTTP during the migrations: {stats.Answers} answers, {stats.Failures} failed, counter {stats.First} -> {stats.Last}, never went back: {stats.Monotonic}, slowest answer {stats.SlowestMs:0} ms");
        foreach (var report in reports)
            output.WriteLine($"migration: {report}");
        Assert.All(reports, r => Assert.Equal("Succeeded", r.GetProperty("state").GetString()));
        Assert.Equal(0, stats.Failures);
        Assert.True(stats.Monotonic, "the counter served over HTTP never went back");

        // The VM's current serial log: each host keeps the log of the copy it runs, from its arrival on.
        var serial = File.ReadAllText(Path.Combine(_lab.State, "hosts", "cpu1", "run", "vm1", "serial.log"));
        Assert.DoesNotContain("XENAOE-GUEST IO-ERROR", serial);
        Assert.DoesNotContain("XENAOE-LOAD-ERROR", serial);
        Assert.DoesNotContain("I/O error", serial);

        await DownAndCheckAsync();
    }

    private async Task<JsonElement> MigrateAsync(string to)
    {
        var result = await _lab.CliAsync(TimeSpan.FromMinutes(2), ["vm", "migrate", "vm1", "--to", to, "--json"]);
        output.WriteLine($"migrate to {to}: {result.StdOut.Trim()} {result.StdErr.Trim()}");
        using var report = JsonDocument.Parse(result.EnsureSuccess().StdOut);
        return report.RootElement.Clone();
    }

    private async Task DownAndCheckAsync()
    {
        (await _lab.CliAsync("lab", "down", "--state-dir", _lab.State)).EnsureSuccess();
        var namespaces = (await Command.RunAsync("ip", "netns", "list")).EnsureSuccess().StdOut;
        Assert.DoesNotContain(_lab.Prefix + "-", namespaces);
        var leftovers = await Command.RunAsync("pgrep", "-f", _lab.State);
        Assert.True(leftovers.ExitCode == 1, $"processes still run with the lab's files: {leftovers.StdOut}");
    }

    public async Task DisposeAsync() => await _lab.DisposeAsync();

    /// <summary>Polls a URL inside a namespace every 50 ms: how many answers, how many failures, and whether the number ever went back.</summary>
    private sealed class HttpWatcher : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;
        private long _answers, _failures, _first = -1, _latest = -1;
        private bool _monotonic = true;
        private double _slowest;

        private HttpWatcher(string ns, string url) => _loop = Task.Run(() => RunAsync(ns, url));

        public long Latest => Interlocked.Read(ref _latest);

        public static HttpWatcher Start(string ns, string url) => new(ns, url);

        public Task WaitForAnswersAsync(int count)
        {
            var target = Interlocked.Read(ref _answers) + count;
            return Eventually.TrueAsync(() => Interlocked.Read(ref _answers) >= target, TimeSpan.FromSeconds(60), $"{count} more HTTP answers from the VM");
        }

        private async Task RunAsync(string ns, string url)
        {
            // A request answered late is slow, not lost: a browser waits longer than a VM's disk stalls when a disk server dies.
            using var http = XenAoe.Os.NamespaceHttp.Create(ns, TimeSpan.FromSeconds(10));
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    var started = Stopwatch.GetTimestamp();
                    var value = long.Parse((await http.GetStringAsync(url, _stop.Token)).Trim(), CultureInfo.InvariantCulture);
                    _slowest = Math.Max(_slowest, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                    if (value < Latest)
                        _monotonic = false;
                    if (_first < 0)
                        _first = value;
                    Interlocked.Exchange(ref _latest, value);
                    Interlocked.Increment(ref _answers);
                }
                catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException or FormatException)
                {
                    Interlocked.Increment(ref _failures);
                }
                await Task.Delay(TimeSpan.FromMilliseconds(50), CancellationToken.None);
            }
        }

        public async Task<(long Answers, long Failures, long First, long Last, bool Monotonic, double SlowestMs)> StopAsync()
        {
            await _stop.CancelAsync();
            await _loop;
            return (_answers, _failures, _first, _latest, _monotonic, _slowest);
        }

        public async ValueTask DisposeAsync()
        {
            if (!_stop.IsCancellationRequested)
                await StopAsync();
            _stop.Dispose();
        }
    }
}
