using System.Collections.Concurrent;
using System.Diagnostics;
using XenAoe.Agents.Host;
using Xunit.Abstractions;

namespace XenAoe.IntegrationTests.Lab;

/// <summary>
/// A storage switch lost under a running VM, at cluster level: every port of san0 unplugged while vm1 writes its counter
/// (fsync every 200 ms) through its mirror, whose two legs are each reached over both switches. The guest must see no I/O
/// error and no stall of 2 s, the mirror must stay in sync, and plugging the switch back must bring every path back up.
/// </summary>
[Trait("Category", "Integration")]
[Collection(WholeLabCollection.Name)]
public sealed class LabSwitchLossTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan MaxStall = TimeSpan.FromSeconds(2);
    private readonly CliLab _lab = new("xw");

    public Task InitializeAsync() => Task.CompletedTask;

    [Fact]
    public async Task A_storage_switch_cut_under_a_writing_vm_costs_no_io_error_nor_a_2_s_stall_and_restoring_it_brings_its_paths_back()
    {
        await _lab.UpAsync(output);
        await _lab.CounterAfterAsync(3);
        using var cpu1 = new HostApiClient(_lab.HostSocket("cpu1"));
        var clock = Stopwatch.StartNew();
        var samples = new ConcurrentQueue<(TimeSpan At, long Counter)>();
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                if (await _lab.CounterAsync() is { } counter)
                    samples.Enqueue((clock.Elapsed, counter));
                await Task.Delay(50);
            }
        });
        await Task.Delay(TimeSpan.FromSeconds(2));

        var cut = clock.Elapsed;
        output.WriteLine((await _lab.CliAsync("lab", "switch", "san0", "down", "--state-dir", _lab.State)).EnsureSuccess().StdOut);
        await Eventually.TrueAsync(async () => PathsVia(await cpu1.GetAsync("vm1"), "eth0").All(p => p.State == PathState.Down),
            TimeSpan.FromSeconds(15), "vm1's paths over eth0 (san0) to be down");
        // The counter keeps being written over san1 alone.
        await Task.Delay(TimeSpan.FromSeconds(5));
        var during = await cpu1.GetAsync("vm1");
        Assert.Equal(DiskHealth.Healthy, during!.Disks[0].Health);
        Assert.All(PathsVia(during, "eth1"), p => Assert.Equal(PathState.Up, p.State));

        var restored = clock.Elapsed;
        output.WriteLine((await _lab.CliAsync("lab", "switch", "san0", "up", "--state-dir", _lab.State)).EnsureSuccess().StdOut);
        await Eventually.TrueAsync(async () => (await cpu1.GetAsync("vm1"))!.Disks[0].Paths!.All(p => p.State == PathState.Up),
            TimeSpan.FromSeconds(30), "every path of vm1's disk to be up again");
        output.WriteLine($"san0 restored; every path up {(clock.Elapsed - restored).TotalSeconds:0.0} s later");
        await Task.Delay(TimeSpan.FromSeconds(2));
        await sampling.CancelAsync();
        await sampler;

        // The longest the counter stood still, from just before the cut to after the restore.
        var window = samples.Where(s => s.At >= cut - TimeSpan.FromSeconds(1)).ToList();
        var stall = LongestStill(window);
        output.WriteLine($"{window.Count} counter samples; longest stall {stall.TotalSeconds:0.00} s; counter {window[0].Counter} -> {window[^1].Counter}");
        Assert.True(stall < MaxStall, $"the counter stood still for {stall.TotalSeconds:0.00} s");
        using (var status = await _lab.GuestStatusAsync())
            Assert.Equal(0, status.RootElement.GetProperty("ioErrors").GetInt64());
        Assert.Equal(DiskHealth.Healthy, (await cpu1.GetAsync("vm1"))!.Disks[0].Health);
        await _lab.StopAndCheckDiskAsync(output, window[^1].Counter);
    }

    private static IEnumerable<VmDiskPath> PathsVia(VmStatus? vm, string nic)
    {
        var paths = vm?.Disks[0].Paths ?? throw new InvalidOperationException("vm1 reports no paths");
        var via = paths.Where(p => p.Interface == nic).ToList();
        Assert.Equal(2, via.Count); // one to each leg
        return via;
    }

    /// <summary>The longest time between a counter value first being seen and the next value being seen.</summary>
    private static TimeSpan LongestStill(IReadOnlyList<(TimeSpan At, long Counter)> samples)
    {
        var longest = TimeSpan.Zero;
        var since = samples[0];
        foreach (var sample in samples.Skip(1))
        {
            if (sample.Counter == since.Counter)
                continue;
            longest = TimeSpan.FromTicks(Math.Max(longest.Ticks, (sample.At - since.At).Ticks));
            since = sample;
        }
        return longest;
    }

    public async Task DisposeAsync() => await _lab.DisposeAsync();
}
