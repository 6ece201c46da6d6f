using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using XenAoe.IntegrationTests.DataPath;
using XenAoe.IntegrationTests.DiskServer;
using XenAoe.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace XenAoe.IntegrationTests.Lab;

/// <summary>
/// Disk-server maintenance on the lab, driven through the CLI: draining a disk server moves the running VM's leg to the third
/// one with a full copy while the guest keeps writing, then deletes the old volume; the legs end byte-identical.
/// </summary>
[Trait("Category", "Integration")]
public sealed class LabMaintenanceTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string VmUrl = "http://10.77.1.41/counter";
    private readonly string _prefix = "xm" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))[..5];
    private readonly string _state = Directory.CreateTempSubdirectory("xenaoe-lab-maint-").FullName;
    private HttpClient? _http;

    public Task InitializeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Draining_a_disk_server_moves_the_running_vms_leg_to_the_third_one_while_it_keeps_counting_and_the_legs_end_identical()
    {
        var up = await CliAsync(TimeSpan.FromMinutes(8), ["lab", "up", "--prefix", _prefix, "--state-dir", _state, "--disks", "3"]);
        output.WriteLine(up.StdOut);
        up.EnsureSuccess();
        _http = XenAoe.Lab.NamespaceHttp.Create(_prefix + "-sw", TimeSpan.FromSeconds(2));
        Assert.Equal(["disk1", "disk2"], await LegServersAsync());
        var before = await CounterAfterAsync(3);

        var clock = Stopwatch.StartNew();
        var drain = CliAsync(TimeSpan.FromMinutes(10), ["disk", "drain", "disk2"]);
        var during = new List<long>();
        while (!drain.IsCompleted)
        {
            if (await CounterAsync() is { } now)
                during.Add(now);
            await Task.WhenAny(drain, Task.Delay(TimeSpan.FromMilliseconds(200)));
        }
        var drained = await drain;
        output.WriteLine($"drain of disk2 took {clock.Elapsed.TotalSeconds:0.0} s; counter during it: {string.Join(" ", during.Distinct())}");
        output.WriteLine(drained.StdOut + drained.StdErr);
        drained.EnsureSuccess();
        Assert.True(during.Count >= 2 && during[^1] > during[0] && during[0] >= before,
            $"vm1's counter should grow during the drain from {before}; it read {string.Join(" ", during)}");
        var after = await CounterAfterAsync(during[^1] + 5);

        Assert.Equal(["disk1", "disk3"], await LegServersAsync());
        using var show = JsonDocument.Parse((await CliAsync("vm", "show", "vm1", "--json")).EnsureSuccess().StdOut);
        var disk = show.RootElement.GetProperty("disks")[0];
        Assert.Equal("healthy", disk.GetProperty("health").GetString());
        var size = disk.GetProperty("sizeBytes").GetInt64();
        output.WriteLine($"vm1 root on its host: legs {disk.GetProperty("legs")}, {disk.GetProperty("health")}, {size} bytes");
        var disk2Volumes = (await CliAsync("disk", "volume", "list", "--pool", Path.Combine(_state, "pools", "disk2"), "--json")).EnsureSuccess().StdOut;
        Assert.DoesNotContain("vm1-root", disk2Volumes, StringComparison.Ordinal);
        using var jobs = JsonDocument.Parse((await CliAsync("job", "list", "--json")).EnsureSuccess().StdOut);
        var job = jobs.RootElement.EnumerateArray().Last(j => j.GetProperty("kind").GetString() == "disk-drain");
        foreach (var line in job.GetProperty("log").EnumerateArray())
            output.WriteLine(line.GetProperty("text").GetString());
        Assert.Equal(["drain", "replace-leg vm1/root"], job.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("name").GetString()));

        // Stopped cleanly, both legs hold the same bytes and the guest's file system checks clean.
        (await CliAsync("vm", "stop", "vm1")).EnsureSuccess();
        var leg1 = MirrorLab.DataOf(Path.Combine(_state, "pools", "disk1", "vm1-root.img"), size);
        var leg3 = MirrorLab.DataOf(Path.Combine(_state, "pools", "disk3", "vm1-root.img"), size);
        Assert.True(leg1.AsSpan().SequenceEqual(leg3), "the legs on disk1 and disk3 hold the same bytes");
        var image = Path.Combine(_state, "root-copy.img");
        await File.WriteAllBytesAsync(image, leg3);
        var fsck = await Command.RunAsync("e2fsck", "-fn", image);
        output.WriteLine(fsck.StdOut);
        Assert.True(fsck.ExitCode == 0, $"e2fsck found problems:\n{fsck.StdOut}{fsck.StdErr}");
        var counter = await Command.RunAsync("debugfs", "-R", "cat /var/lib/xenaoe/counter", image);
        Assert.True(long.Parse(counter.StdOut.Trim(), CultureInfo.InvariantCulture) >= after, $"the counter on disk ({counter.StdOut.Trim()}) is at least the last one served ({after})");
    }

    /// <summary>The disk servers of vm1's root legs, as the controller records them.</summary>
    private async Task<string[]> LegServersAsync()
    {
        using var vms = JsonDocument.Parse((await CliAsync("vm", "list", "--json")).EnsureSuccess().StdOut);
        var vm = vms.RootElement.EnumerateArray().Single(v => v.GetProperty("name").GetString() == "vm1");
        return [.. vm.GetProperty("disks")[0].GetProperty("legs").EnumerateArray().Select(l => l.GetProperty("diskServer").GetString()!).Order(StringComparer.Ordinal)];
    }

    /// <summary>The VM's counter once it has reached <paramref name="atLeast"/>.</summary>
    private async Task<long> CounterAfterAsync(long atLeast)
    {
        long value = -1;
        await Eventually.TrueAsync(async () => (value = await CounterAsync() ?? -1) >= atLeast, TimeSpan.FromSeconds(60), $"vm1's counter to reach {atLeast}");
        return value;
    }

    private async Task<long?> CounterAsync()
    {
        try
        {
            return long.Parse((await _http!.GetStringAsync(VmUrl)).Trim(), CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or FormatException)
        {
            return null;
        }
    }

    private Task<CommandResult> CliAsync(params string[] args) => CliAsync(TimeSpan.FromSeconds(90), args);

    private Task<CommandResult> CliAsync(TimeSpan timeout, string[] args) =>
        Command.RunAsync("env", [$"XENAOE_LAB={_state}", "dotnet", DiskServerHost.CliDll, .. args], timeout);

    public async Task DisposeAsync()
    {
        _http?.Dispose();
        await Command.RunAsync("dotnet", [DiskServerHost.CliDll, "lab", "down", "--state-dir", _state], TimeSpan.FromMinutes(2));
        Directory.Delete(_state, recursive: true);
    }
}
