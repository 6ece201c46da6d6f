using XenAoe.Aoe;
using XenAoe.Initiator;
using Xunit.Abstractions;

namespace XenAoe.IntegrationTests.Initiator;

/// <summary>Our initiator against our disk server and against vblade: discovery, IDENTIFY, 8 MiB written and read back.</summary>
[Trait("Category", "Integration")]
public sealed class InitiatorDataPathTests(ITestOutputHelper output)
{
    private const int PatternBytes = 8 << 20;
    private const long PatternOffset = 3 << 20;

    /// <summary>One full frame at MTU 9000: 17 sectors.</summary>
    private const int FrameBytes = 17 * 512;

    [Fact]
    public async Task Against_our_target_it_discovers_identifies_and_round_trips_8_MiB_with_many_requests_in_flight()
    {
        await using var lab = await InitiatorLab.CreateAsync();
        await lab.StartOurTargetAsync("64M");
        await RoundTripAsync(lab, "xenaoe disk serve");
    }

    [Fact]
    public async Task Against_vblade_it_discovers_identifies_and_round_trips_8_MiB_with_many_requests_in_flight()
    {
        await using var lab = await InitiatorLab.CreateAsync();
        await lab.StartVbladeAsync(64 << 20);
        await RoundTripAsync(lab, "vblade");
    }

    [Theory]
    [InlineData(1500, 9000)]
    [InlineData(9000, 1500)]
    public async Task A_path_whose_MTU_is_smaller_on_one_side_uses_the_smaller_frames(int clientMtu, int targetMtu)
    {
        await using var lab = await InitiatorLab.CreateAsync(clientMtu: clientMtu, diskMtu: targetMtu);
        await lab.StartOurTargetAsync("16M");
        var initiator = lab.StartInitiator();
        await using var device = await initiator.OpenAsync(InitiatorLab.Address);
        var path = Assert.Single(device.Paths);
        Assert.Equal(AoeProtocol.SectorsPerFrame(1500), path.SectorsPerFrame);
        // The smallest known MTU: ours, or what the target's sector count implies (22 + 2 × 512) when it offers less.
        Assert.Equal(clientMtu == 1500 ? 1500 : 22 + 2 * 512, path.Mtu);
        Assert.Equal(clientMtu, path.LocalMtu);
        var data = new byte[1 << 20];
        Random.Shared.NextBytes(data);
        await InitiatorLab.WriteAsync(device, 0, data, 64 << 10, 8);
        var back = new byte[data.Length];
        await InitiatorLab.ReadAsync(device, 0, back, 64 << 10, 8);
        Assert.Equal(data, back);
        Assert.Equal(0, device.Statistics.FailedRequests);
    }

    /// <summary>
    /// Throughput of 8 MiB sequential I/O with 64 frames outstanding, our disk server and vblade side by side, both over an image
    /// on tmpfs (so the network path is measured, not this machine's disk) at MTU 9000. Reported, not asserted: the machine has
    /// two cores shared by both ends.
    /// </summary>
    [Fact]
    public async Task Throughput_against_our_target_and_vblade_is_reported()
    {
        var results = new List<string>();
        await using (var lab = await InitiatorLab.CreateAsync())
        {
            await lab.StartOurTargetOnFileAsync("/dev/shm", 64 << 20);
            results.Add(await MeasureAsync(lab, "xenaoe disk serve (write-through, tmpfs)"));
        }
        await using (var lab = await InitiatorLab.CreateAsync())
        {
            await lab.StartVbladeAsync(64 << 20, "/dev/shm", "-b", "64");
            results.Add(await MeasureAsync(lab, "vblade -b 64 (tmpfs)"));
        }
        await using (var lab = await InitiatorLab.CreateAsync())
        {
            await lab.StartVbladeAsync(64 << 20, "/dev/shm");
            results.Add(await MeasureAsync(lab, "vblade, default 16 buffers (tmpfs)"));
        }
        foreach (var line in results)
            output.WriteLine(line);
    }

    private static async Task<string> MeasureAsync(InitiatorLab lab, string name)
    {
        var initiator = lab.StartInitiator(new AoeInitiatorOptions { MaxWindow = 64 });
        await using var device = await initiator.OpenAsync(InitiatorLab.Address);
        var pattern = new byte[PatternBytes];
        Random.Shared.NextBytes(pattern);
        var back = new byte[PatternBytes];
        double frameWrite = 0, frameRead = 0, bigWrite = 0, bigRead = 0;
        for (var run = 0; run < 5; run++)
        {
            frameWrite = Math.Max(frameWrite, await InitiatorLab.WriteAsync(device, 0, pattern, FrameBytes, 64));
            frameRead = Math.Max(frameRead, await InitiatorLab.ReadAsync(device, 0, back, FrameBytes, 64));
            bigWrite = Math.Max(bigWrite, await InitiatorLab.WriteAsync(device, 0, pattern, 1 << 20, 8));
            bigRead = Math.Max(bigRead, await InitiatorLab.ReadAsync(device, 0, back, 1 << 20, 8));
        }
        Assert.True(pattern.AsSpan().SequenceEqual(back));
        var stats = device.Statistics;
        var path = device.Paths[0];
        return $"{name}: 8.5 KiB requests x64 in flight: write {frameWrite:0} MB/s, read {frameRead:0} MB/s | 1 MiB requests x8 (window {path.MaxWindow}): " +
            $"write {bigWrite:0} MB/s, read {bigRead:0} MB/s | {stats.FramesSent} frames, {stats.Retransmissions} retransmitted";
    }

    private async Task RoundTripAsync(InitiatorLab lab, string name)
    {
        var initiator = lab.StartInitiator(new AoeInitiatorOptions { MaxWindow = 64 });
        var found = await initiator.DiscoverAsync(TimeSpan.FromSeconds(1));
        var target = Assert.Single(found, t => t.Address == InitiatorLab.Address);
        var path = Assert.Single(target.Paths);
        Assert.Equal("eth0", path.Interface);
        Assert.Equal(MacAddress.Parse(await lab.DiskHost.MacAsync("eth0")), path.TargetMac);
        Assert.Equal(17, path.SectorsPerFrame);
        output.WriteLine($"{name}: buffer count {target.BufferCount}, {path.TargetSectors} sectors per frame offered");

        await using var device = await initiator.OpenAsync(InitiatorLab.Address);
        Assert.Equal(64L << 20, device.Size);
        var pathInfo = Assert.Single(device.Paths);
        Assert.Equal(AoePathState.Up, pathInfo.State);
        Assert.Equal(Math.Min(64, (int)target.BufferCount), pathInfo.MaxWindow);

        var pattern = new byte[PatternBytes];
        Random.Shared.NextBytes(pattern);
        // Many requests in flight, of sizes that do not line up with frames: 64 requests of 40 KiB (4.7 frames each).
        await InitiatorLab.WriteAsync(device, PatternOffset, pattern, 40 << 10, inFlight: 64);
        var back = new byte[PatternBytes];
        await InitiatorLab.ReadAsync(device, PatternOffset, back, 40 << 10, inFlight: 64);
        Assert.True(pattern.AsSpan().SequenceEqual(back), "the data read back equals the data written");
        await device.FlushAsync();
        Assert.True(pattern.AsSpan().SequenceEqual(lab.ReadVolumeFile(PatternOffset, PatternBytes)), $"the {name} volume file holds the pattern");

        // Throughput: 8 MiB sequential, one frame per request with 64 in flight, then 1 MiB requests 8 at a time
        // (the path window, up to 64 frames, is then the limit); best of three.
        var frameWrite = 0.0;
        var frameRead = 0.0;
        var bigWrite = 0.0;
        var bigRead = 0.0;
        for (var run = 0; run < 3; run++)
        {
            frameWrite = Math.Max(frameWrite, await InitiatorLab.WriteAsync(device, 0, pattern, FrameBytes, 64));
            frameRead = Math.Max(frameRead, await InitiatorLab.ReadAsync(device, 0, back, FrameBytes, 64));
            bigWrite = Math.Max(bigWrite, await InitiatorLab.WriteAsync(device, 0, pattern, 1 << 20, 8));
            bigRead = Math.Max(bigRead, await InitiatorLab.ReadAsync(device, 0, back, 1 << 20, 8));
        }
        Assert.True(pattern.AsSpan().SequenceEqual(back));
        var stats = device.Statistics;
        var info = device.Paths[0];
        output.WriteLine($"{name}: 8.5 KiB requests x64: write {frameWrite:0} MB/s, read {frameRead:0} MB/s; 1 MiB requests x8: write {bigWrite:0} MB/s, read {bigRead:0} MB/s");
        output.WriteLine($"{name}: frames {stats.FramesSent}, retransmissions {stats.Retransmissions}, timeouts {stats.Timeouts}, stale {stats.StaleReplies}; " +
            $"window {info.Window:0.#}/{info.MaxWindow}, read srtt {info.SmoothedRtt.TotalMicroseconds:0} us rto {info.RetransmitTimeout.TotalMicroseconds:0} us, " +
            $"write srtt {info.WriteSmoothedRtt.TotalMicroseconds:0} us rto {info.WriteRetransmitTimeout.TotalMicroseconds:0} us");
        Assert.Equal(0, stats.FailedRequests);
    }
}
