using System.Diagnostics;
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
        var boots = await _lab.GuestBootsAsync();

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
        Assert.Equal(boots, await _lab.GuestBootsAsync());

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
}
