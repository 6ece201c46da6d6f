using System.Diagnostics;
using XenAoe.Aoe;
using XenAoe.Block;
using XenAoe.Initiator;
using Xunit.Abstractions;

namespace XenAoe.IntegrationTests.Initiator;

/// <summary>Multipath, path loss and return, and a target that dies and comes back, with I/O running throughout.</summary>
[Trait("Category", "Integration")]
public sealed class InitiatorFailoverTests(ITestOutputHelper output)
{
    private static readonly TimeSpan PathTimeout = TimeSpan.FromSeconds(2);

    [Fact]
    public async Task A_path_killed_mid_io_is_dropped_within_PathTimeout_io_continues_and_the_path_returns_when_its_link_does()
    {
        await using var lab = await InitiatorLab.CreateAsync(switches: 2);
        await lab.StartOurTargetAsync("64M");
        var initiator = lab.StartInitiator(new AoeInitiatorOptions { PathTimeout = PathTimeout, ProbeInterval = TimeSpan.FromMilliseconds(250) });
        await using var device = await initiator.OpenAsync(InitiatorLab.Address);
        var targetEth1 = MacAddress.Parse(await lab.DiskHost.MacAsync("eth1"));
        await Eventually.TrueAsync(() => device.Paths.Count == 2, TimeSpan.FromSeconds(5), "both target NICs to be paths of the device");
        AoePathInfo Eth1() => device.Paths.Single(p => p.Interface == "eth1" && p.TargetMac == targetEth1);
        Assert.Equal(AoePathState.Up, Eth1().State);

        await using var load = VerifiedLoad.Start(device, workers: 4);
        await Eventually.TrueAsync(() => load.Operations > 50 && Eth1().FramesSent > 0, TimeSpan.FromSeconds(20), "I/O to run on both paths");

        var clock = Stopwatch.StartNew();
        (await lab.DiskHost.RunAsync("ip", "link", "set", "eth1", "down")).EnsureSuccess();
        await Eventually.TrueAsync(() => Eth1().State == AoePathState.Down, PathTimeout + TimeSpan.FromSeconds(3), "the eth1 path to be marked down");
        var detected = clock.Elapsed;
        output.WriteLine($"path down after {detected.TotalMilliseconds:0} ms (PathTimeout {PathTimeout.TotalMilliseconds:0} ms)");
        Assert.True(detected <= PathTimeout + TimeSpan.FromSeconds(1), $"the path went down after {detected}, expected within PathTimeout ({PathTimeout}) plus slack");

        var before = load.Operations;
        await Eventually.TrueAsync(() => load.Operations > before + 50, TimeSpan.FromSeconds(10), "I/O to go on over the remaining path");
        Assert.Null(load.Failure);

        clock.Restart();
        (await lab.DiskHost.RunAsync("ip", "link", "set", "eth1", "up")).EnsureSuccess();
        await Eventually.TrueAsync(() => Eth1().State == AoePathState.Up, TimeSpan.FromSeconds(10), "the eth1 path to come back up");
        output.WriteLine($"path back up {clock.Elapsed.TotalMilliseconds:0} ms after its link");
        var sentBefore = Eth1().FramesSent;
        await Eventually.TrueAsync(() => Eth1().FramesSent > sentBefore + 20, TimeSpan.FromSeconds(10), "I/O to use the returned path again");

        await load.StopAsync();
        Assert.Null(load.Failure);
        await device.FlushAsync();
        load.VerifyFile(lab);
        var stats = device.Statistics;
        output.WriteLine($"{load.Operations} verified operations; frames {stats.FramesSent}, retransmissions {stats.Retransmissions}, timeouts {stats.Timeouts}");
        Assert.Equal(0, stats.FailedRequests);
    }

    [Fact]
    public async Task When_the_target_dies_io_fails_with_Io_after_DeviceTimeout_and_works_again_once_it_is_restarted()
    {
        var deviceTimeout = TimeSpan.FromSeconds(3);
        await using var lab = await InitiatorLab.CreateAsync();
        await lab.StartOurTargetAsync("32M");
        var initiator = lab.StartInitiator(new AoeInitiatorOptions { PathTimeout = TimeSpan.FromSeconds(1), DeviceTimeout = deviceTimeout, ProbeInterval = TimeSpan.FromMilliseconds(250) });
        await using var device = await initiator.OpenAsync(InitiatorLab.Address);

        await using var load = VerifiedLoad.Start(device, workers: 4, stopOnFailure: true);
        await Eventually.TrueAsync(() => load.Operations > 20, TimeSpan.FromSeconds(20), "I/O to run");
        var clock = Stopwatch.StartNew();
        await lab.Disk!.StopAsync(Signal.Kill);
        var failure = await Eventually.ReferenceAsync(() => Task.FromResult(load.Failure), deviceTimeout + TimeSpan.FromSeconds(5), "outstanding I/O to fail");
        var failedAfter = clock.Elapsed;
        output.WriteLine($"I/O failed {failedAfter.TotalMilliseconds:0} ms after the kill (DeviceTimeout {deviceTimeout.TotalMilliseconds:0} ms): {failure.Message}");
        var error = Assert.IsType<BlockDeviceException>(failure);
        Assert.Equal(BlockError.Io, error.Error);
        Assert.InRange(failedAfter, deviceTimeout - TimeSpan.FromMilliseconds(500), deviceTimeout + TimeSpan.FromSeconds(2));
        Assert.All(device.Paths, p => Assert.Equal(AoePathState.Down, p.State));
        await load.StopAsync();

        await lab.Disk.StartAsync();
        await Eventually.TrueAsync(() => device.Paths.All(p => p.State == AoePathState.Up), TimeSpan.FromSeconds(10), "the path to come back when the target is restarted");
        var data = new byte[1 << 20];
        Random.Shared.NextBytes(data);
        await device.WriteAsync(5 << 20, data);
        var back = new byte[data.Length];
        await device.ReadAsync(5 << 20, back);
        Assert.Equal(data, back);
    }
}

/// <summary>
/// Workers that each own a region of the device and loop: write random data to a random block of it, read it back, compare.
/// The last data written per block is kept to check the target's file at the end.
/// </summary>
internal sealed class VerifiedLoad : IAsyncDisposable
{
    private const int Block = 64 << 10;
    private const int BlocksPerWorker = 64;

    private readonly CancellationTokenSource _stop = new();
    private readonly Task[] _workers;
    private readonly byte[][] _model;
    private readonly bool _stopOnFailure;
    private long _operations;
    private Exception? _failure;

    private VerifiedLoad(AoeDevice device, int workers, bool stopOnFailure)
    {
        _stopOnFailure = stopOnFailure;
        _model = new byte[workers * BlocksPerWorker][];
        _workers = [.. Enumerable.Range(0, workers).Select(w => Task.Run(() => RunAsync(device, w)))];
    }

    public long Operations => Interlocked.Read(ref _operations);

    /// <summary>The first failure of any worker; null while all went well.</summary>
    public Exception? Failure => Volatile.Read(ref _failure);

    public static VerifiedLoad Start(AoeDevice device, int workers, bool stopOnFailure = false) => new(device, workers, stopOnFailure);

    private async Task RunAsync(AoeDevice device, int worker)
    {
        var random = new Random(worker);
        var data = new byte[Block];
        var back = new byte[Block];
        while (!_stop.IsCancellationRequested)
        {
            var block = worker * BlocksPerWorker + random.Next(BlocksPerWorker);
            random.NextBytes(data);
            try
            {
                await device.WriteAsync((long)block * Block, data);
                _model[block] = (byte[])data.Clone();
                await device.ReadAsync((long)block * Block, back);
                if (!data.AsSpan().SequenceEqual(back))
                    throw new InvalidDataException($"block {block} read back differs from what was written");
                Interlocked.Increment(ref _operations);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _failure, e, null);
                if (_stopOnFailure || e is InvalidDataException)
                    return;
                // A block whose write failed holds unknown data: forget it.
                _model[block] = null!;
            }
        }
    }

    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_workers);
    }

    /// <summary>Checks that the target's file holds the last data written to each block.</summary>
    public void VerifyFile(InitiatorLab lab)
    {
        for (var block = 0; block < _model.Length; block++)
        {
            if (_model[block] is { } expected)
                Assert.True(expected.AsSpan().SequenceEqual(lab.ReadVolumeFile((long)block * Block, Block)), $"block {block} of the volume file holds the last data written");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _stop.Dispose();
    }
}
