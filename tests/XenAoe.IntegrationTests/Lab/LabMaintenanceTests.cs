using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using XenAoe.IntegrationTests.DataPath;
using Xunit.Abstractions;

namespace XenAoe.IntegrationTests.Lab;

/// <summary>
/// Disk-server maintenance on the lab, driven through the CLI: draining a disk server moves the running VM's leg to the third
/// one with a full copy while the guest keeps writing, then deletes the old volume; the legs end byte-identical.
/// </summary>
[Trait("Category", "Integration")]
[Collection(WholeLabCollection.Name)]
public sealed class LabMaintenanceTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly CliLab _lab = new("xm");

    public Task InitializeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Draining_a_disk_server_moves_the_running_vms_leg_to_the_third_one_while_it_keeps_counting_and_the_legs_end_identical()
    {
        await _lab.UpAsync(output, "--disks", "3");
        // Which two of the three the scheduler chose depends on their free space, which other work on the machine changes.
        var legs = await LegServersAsync();
        var (kept, drainedServer) = (legs[0], legs[1]);
        var third = new[] { "disk1", "disk2", "disk3" }.Single(d => !legs.Contains(d));
        var before = await _lab.CounterAfterAsync(3);

        var clock = Stopwatch.StartNew();
        var drain = _lab.CliAsync(TimeSpan.FromMinutes(10), ["disk", "drain", drainedServer]);
        var during = new List<long>();
        while (!drain.IsCompleted)
        {
            if (await _lab.CounterAsync() is { } now)
                during.Add(now);
            await Task.WhenAny(drain, Task.Delay(TimeSpan.FromMilliseconds(200)));
        }
        var drained = await drain;
        output.WriteLine($"drain of {drainedServer} took {clock.Elapsed.TotalSeconds:0.0} s; counter during it: {string.Join(" ", during.Distinct())}");
        output.WriteLine(drained.StdOut + drained.StdErr);
        drained.EnsureSuccess();
        Assert.True(during.Count >= 2 && during[^1] > during[0] && during[0] >= before,
            $"vm1's counter should grow during the drain from {before}; it read {string.Join(" ", during)}");
        var after = await _lab.CounterAfterAsync(during[^1] + 5);

        Assert.Equal(new[] { kept, third }.Order(StringComparer.Ordinal), await LegServersAsync());
        using var show = JsonDocument.Parse((await _lab.CliAsync("vm", "show", "vm1", "--json")).EnsureSuccess().StdOut);
        var disk = show.RootElement.GetProperty("disks")[0];
        Assert.Equal("healthy", disk.GetProperty("health").GetString());
        var size = disk.GetProperty("sizeBytes").GetInt64();
        output.WriteLine($"vm1 root on its host: legs {disk.GetProperty("legs")}, {disk.GetProperty("health")}, {size} bytes");
        var drainedVolumes = (await _lab.CliAsync("disk", "volume", "list", "--pool", _lab.PoolOf(drainedServer), "--json")).EnsureSuccess().StdOut;
        Assert.DoesNotContain("vm1-root", drainedVolumes, StringComparison.Ordinal);
        using var jobs = JsonDocument.Parse((await _lab.CliAsync("job", "list", "--json")).EnsureSuccess().StdOut);
        var job = jobs.RootElement.EnumerateArray().Last(j => j.GetProperty("kind").GetString() == "disk-drain");
        foreach (var line in job.GetProperty("log").EnumerateArray())
            output.WriteLine(line.GetProperty("text").GetString());
        Assert.Equal(["drain", "vm1/root place", "vm1/root volume", "vm1/root replace", "vm1/root copy", "vm1/root record", "vm1/root release"], job.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("name").GetString()));

        // Stopped cleanly, both legs hold the same bytes and the guest's file system checks clean.
        (await _lab.CliAsync("vm", "stop", "vm1")).EnsureSuccess();
        var keptLeg = MirrorLab.DataOf(Path.Combine(_lab.PoolOf(kept), "vm1-root.img"), size);
        var newLeg = MirrorLab.DataOf(Path.Combine(_lab.PoolOf(third), "vm1-root.img"), size);
        Assert.True(keptLeg.AsSpan().SequenceEqual(newLeg), $"the legs on {kept} and {third} hold the same bytes");
        var image = Path.Combine(_lab.State, "root-copy.img");
        await File.WriteAllBytesAsync(image, newLeg);
        var fsck = await Command.RunAsync("e2fsck", "-fn", image);
        output.WriteLine(fsck.StdOut);
        Assert.True(fsck.ExitCode == 0, $"e2fsck found problems:\n{fsck.StdOut}{fsck.StdErr}");
        var counter = await Command.RunAsync("debugfs", "-R", "cat /var/lib/xenaoe/counter", image);
        Assert.True(long.Parse(counter.StdOut.Trim(), CultureInfo.InvariantCulture) >= after, $"the counter on disk ({counter.StdOut.Trim()}) is at least the last one served ({after})");
    }

    /// <summary>The disk servers of vm1's root legs, as the controller records them.</summary>
    private async Task<string[]> LegServersAsync()
    {
        using var vms = JsonDocument.Parse((await _lab.CliAsync("vm", "list", "--json")).EnsureSuccess().StdOut);
        var vm = vms.RootElement.EnumerateArray().Single(v => v.GetProperty("name").GetString() == "vm1");
        return [.. vm.GetProperty("disks")[0].GetProperty("legs").EnumerateArray().Select(l => l.GetProperty("diskServer").GetString()!).Order(StringComparer.Ordinal)];
    }

    public async Task DisposeAsync() => await _lab.DisposeAsync();
}
