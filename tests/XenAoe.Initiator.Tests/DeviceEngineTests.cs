using XenAoe.Aoe;
using XenAoe.Block;

namespace XenAoe.Initiator.Tests;

/// <summary>The device engine against fake ports and a fake clock: frames out, replies in, time moved by hand.</summary>
public sealed class DeviceEngineTests
{
    private static readonly AoeAddress Target = new(1, 0);
    private static readonly MacAddress TargetA = new(0x02_00_00_00_0A_01);
    private static readonly MacAddress TargetB = new(0x02_00_00_00_0A_02);

    private sealed class Rig
    {
        public FakeTime Time { get; } = new();
        public AoeDevice Device { get; }
        public FakePort A { get; }
        public FakePort B { get; }
        public byte[] Disk { get; } = new byte[4 << 20];

        public Rig(int paths = 2, int mtuB = 9000, int bufferCount = 64, AoeInitiatorOptions? options = null)
        {
            options = (options ?? new AoeInitiatorOptions()) with { Interfaces = ["eth0", "eth1"], Time = Time };
            Device = new AoeDevice(Target, options, host: null, seed: 42) { Size = Disk.Length };
            A = new FakePort(0, "eth0", new MacAddress(0x02_00_00_00_00_01), 9000);
            B = new FakePort(1, "eth1", new MacAddress(0x02_00_00_00_00_02), mtuB);
            Device.AddOrUpdatePath(A, TargetA, 17, bufferCount, Time.GetTimestamp(), TimeSpan.FromMilliseconds(1));
            if (paths > 1)
                Device.AddOrUpdatePath(B, TargetB, 17, bufferCount, Time.GetTimestamp(), TimeSpan.FromMilliseconds(1));
        }

        public AoePathInfo PathA => Device.Paths[0];
        public AoePathInfo PathB => Device.Paths[1];

        /// <summary>A target over <see cref="Disk"/>: the reply a request frame gets.</summary>
        public byte[] Answer(byte[] request)
        {
            Assert.True(AoeHeader.TryRead(request, out var header));
            if (header.Command == AoeCommand.QueryConfig)
                return Replies.Config(request, 17, 64);
            Assert.True(AtaHeader.TryRead(request, out var ata));
            var bytes = ata.SectorCount * 512;
            var at = (int)ata.Lba * 512;
            switch (ata.CommandOrStatus)
            {
                case AtaCommands.WriteSectorsExt:
                    request.AsSpan(36, bytes).CopyTo(Disk.AsSpan(at));
                    return Replies.Ata(request);
                case AtaCommands.ReadSectorsExt:
                    return Replies.Ata(request, data: Disk.AsSpan(at, bytes).ToArray());
                default:
                    return Replies.Ata(request);
            }
        }

        public void Deliver(FakePort port, byte[] reply)
        {
            Assert.True(AoeHeader.TryRead(reply, out var header));
            ulong dirty = 0;
            var now = Time.GetTimestamp();
            if (header.Command == AoeCommand.QueryConfig)
            {
                ConfigHeader.TryRead(reply, out var config);
                Device.OnConfigReply(port, header.Source, config.SectorCount, config.BufferCount, now, ref dirty);
            }
            if ((header.Tag & TagTable.ControlBit) != 0)
                Device.OnControlReply(port, reply, header, now);
            else if (header.Command == AoeCommand.Ata)
                Device.OnAtaReply(port, reply, header, now, ref dirty);
        }

        /// <summary>Answers every frame sent until nothing more is sent; returns the frames answered.</summary>
        public int Pump()
        {
            var answered = 0;
            while (true)
            {
                var frames = A.Take().Select(f => (A, f)).Concat(B.Take().Select(f => (B, f))).ToList();
                if (frames.Count == 0)
                    return answered;
                foreach (var (port, frame) in frames)
                {
                    Time.Advance(TimeSpan.FromMicroseconds(50));
                    Deliver(port, Answer(frame));
                    answered++;
                }
            }
        }

        public void Tick(TimeSpan after)
        {
            Time.Advance(after);
            ulong dirty = 0;
            Device.Tick(Time.GetTimestamp(), ref dirty);
        }
    }

    [Fact]
    public async Task A_large_write_and_read_back_cross_many_frames_on_both_paths()
    {
        var rig = new Rig();
        var data = new byte[1 << 20];
        Random.Shared.NextBytes(data);
        var write = rig.Device.WriteAsync(8192, data);
        Assert.True(rig.Pump() >= (1 << 20) / (17 * 512));
        Assert.True(write.IsCompletedSuccessfully);
        await write;
        Assert.Equal(data, rig.Disk.AsSpan(8192, data.Length).ToArray());

        var back = new byte[data.Length];
        var read = rig.Device.ReadAsync(8192, back);
        rig.Pump();
        await read;
        Assert.Equal(data, back);
        Assert.True(rig.PathA.FramesSent > 0 && rig.PathB.FramesSent > 0, "both paths carry frames");
        var stats = rig.Device.Statistics;
        Assert.Equal(2048, stats.SectorsWritten);
        Assert.Equal(2048, stats.SectorsRead);
        Assert.Equal(0, stats.Retransmissions);
    }

    [Fact]
    public void A_new_path_sends_only_its_initial_window_and_the_window_grows_with_acknowledgements()
    {
        var rig = new Rig(paths: 1, options: new AoeInitiatorOptions { InitialWindow = 4 });
        _ = rig.Device.ReadAsync(0, new byte[100 * 17 * 512]);
        var first = rig.A.Take();
        Assert.Equal(4, first.Count);
        foreach (var frame in first)
            rig.Deliver(rig.A, rig.Answer(frame));
        // Slow start: each acknowledgement adds a frame to the window and sends two.
        Assert.Equal(8, rig.A.Sent.Count);
        Assert.Equal(8, rig.PathA.Outstanding);
        Assert.Equal(8, rig.PathA.Window);
    }

    [Fact]
    public void The_window_stops_at_the_targets_buffer_count()
    {
        var rig = new Rig(paths: 1, bufferCount: 16);
        _ = rig.Device.ReadAsync(0, new byte[2 << 20]);
        for (var i = 0; i < 10; i++)
        {
            foreach (var frame in rig.A.Take())
                rig.Deliver(rig.A, rig.Answer(frame));
            Assert.True(rig.PathA.Outstanding <= 16);
        }
        Assert.Equal(16, rig.PathA.Window);
        Assert.Equal(16, rig.PathA.MaxWindow);
    }

    [Fact]
    public void Each_path_gets_frames_of_the_size_its_MTU_carries()
    {
        var rig = new Rig(mtuB: 1500);
        Assert.Equal(2, rig.PathB.SectorsPerFrame);
        Assert.Equal(1500, rig.PathB.Mtu);
        Assert.Equal(17, rig.PathA.SectorsPerFrame);
        _ = rig.Device.ReadAsync(0, new byte[64 * 17 * 512]);
        foreach (var frame in rig.A.Take())
        {
            AtaHeader.TryRead(frame, out var ata);
            Assert.Equal((byte)17, ata.SectorCount);
        }
        foreach (var frame in rig.B.Take())
        {
            AtaHeader.TryRead(frame, out var ata);
            Assert.Equal((byte)2, ata.SectorCount);
            Assert.True(frame.Length <= 1514);
        }
    }

    [Fact]
    public void A_frame_that_times_out_is_sent_again_on_the_other_path_with_the_same_tag()
    {
        var rig = new Rig();
        var read = rig.Device.ReadAsync(0, new byte[512]);
        var original = rig.A.Take().Concat(rig.B.Take()).Single();
        var wentA = rig.PathA.Outstanding == 1;
        var (first, second) = wentA ? (rig.A, rig.B) : (rig.B, rig.A);

        rig.Tick(TimeSpan.FromMilliseconds(2)); // within the 3 ms RTO (1 ms sample: srtt + 4 * rttvar)
        Assert.Empty(first.Sent);
        Assert.Empty(second.Sent);
        rig.Tick(TimeSpan.FromMilliseconds(5));
        var again = Assert.Single(second.Sent);
        // The path that lost it is now suspect and only probed (a config query), not sent data.
        Assert.All(first.Take(), f => Assert.Equal((byte)AoeCommand.QueryConfig, f[19]));
        AoeHeader.TryRead(original, out var h1);
        AoeHeader.TryRead(again, out var h2);
        Assert.Equal(h1.Tag, h2.Tag);
        var lost = wentA ? rig.PathA : rig.PathB;
        Assert.Equal(AoePathState.Suspect, lost.State);
        Assert.Equal(1, lost.Timeouts);
        Assert.Equal(2, lost.Window); // 4 halved
        Assert.True(lost.RetransmitTimeout >= TimeSpan.FromMilliseconds(6), "the RTO backs off");

        rig.Deliver(second, rig.Answer(second.Take()[0]));
        Assert.True(read.IsCompletedSuccessfully);
        Assert.Equal(1, rig.Device.Statistics.Retransmissions);
    }

    [Fact]
    public void Karns_rule_no_rtt_sample_comes_from_a_retransmitted_frame()
    {
        var rig = new Rig(paths: 1);
        var before = rig.PathA.SmoothedRtt;
        _ = rig.Device.ReadAsync(0, new byte[512]);
        rig.A.Take();
        rig.Tick(TimeSpan.FromMilliseconds(10)); // retransmitted on the only path (beside a probe of the now suspect path)
        var again = Assert.Single(rig.A.Take(), f => f[19] == (byte)AoeCommand.Ata);
        rig.Time.Advance(TimeSpan.FromMilliseconds(300));
        rig.Deliver(rig.A, rig.Answer(again));
        Assert.Equal(before, rig.PathA.SmoothedRtt);

        _ = rig.Device.ReadAsync(0, new byte[512]);
        var fresh = Assert.Single(rig.A.Take());
        rig.Time.Advance(TimeSpan.FromMilliseconds(2));
        rig.Deliver(rig.A, rig.Answer(fresh));
        Assert.NotEqual(before, rig.PathA.SmoothedRtt);
    }

    [Fact]
    public void Writes_keep_their_own_round_trip_estimate_so_a_burst_after_fast_reads_does_not_time_out()
    {
        var rig = new Rig(paths: 1);
        // Fast reads: the read RTO settles near its floor.
        for (var i = 0; i < 20; i++)
        {
            _ = rig.Device.ReadAsync(0, new byte[512]);
            var frame = rig.A.Take().Single(f => f[19] == (byte)AoeCommand.Ata);
            rig.Time.Advance(TimeSpan.FromMicroseconds(100));
            rig.Deliver(rig.A, rig.Answer(frame));
        }
        Assert.True(rig.PathA.RetransmitTimeout < TimeSpan.FromMilliseconds(2));
        // A write that takes 10 ms (a write-through disk) is not retransmitted.
        var write = rig.Device.WriteAsync(0, new byte[512]);
        var request = rig.A.Take().Single();
        rig.Tick(TimeSpan.FromMilliseconds(10));
        Assert.Empty(rig.A.Sent);
        rig.Deliver(rig.A, rig.Answer(request));
        Assert.True(write.IsCompletedSuccessfully);
        Assert.Equal(0, rig.Device.Statistics.Retransmissions);
        Assert.InRange(rig.PathA.WriteSmoothedRtt.TotalMilliseconds, 9.9, 10.1);
    }

    [Fact]
    public async Task A_target_without_FLUSH_CACHE_EXT_gets_FLUSH_CACHE_instead()
    {
        var rig = new Rig(paths: 1);
        var flush = rig.Device.FlushAsync();
        var ext = Assert.Single(rig.A.Take());
        Assert.Equal(AtaCommands.FlushCacheExt, ext[27]);
        rig.Deliver(rig.A, Replies.Ata(ext, status: AtaStatus.Ready | AtaStatus.Error, error: AtaStatus.Abort));
        var plain = Assert.Single(rig.A.Take());
        Assert.Equal(AtaCommands.FlushCache, plain[27]);
        rig.Deliver(rig.A, Replies.Ata(plain));
        await flush;
        // Remembered: the next flush goes out as FLUSH CACHE at once.
        _ = rig.Device.FlushAsync();
        Assert.Equal(AtaCommands.FlushCache, Assert.Single(rig.A.Take())[27]);
    }

    [Fact]
    public void A_slow_flush_is_resent_without_shrinking_the_window_or_suspecting_the_path()
    {
        var rig = new Rig(paths: 1);
        _ = rig.Device.FlushAsync();
        rig.A.Take();
        rig.Tick(TimeSpan.FromMilliseconds(150));
        Assert.Single(rig.A.Take());
        Assert.Equal(AoePathState.Up, rig.PathA.State);
        Assert.Equal(4, rig.PathA.Window);
    }

    [Fact]
    public void A_duplicate_reply_is_counted_as_stale_and_ignored()
    {
        var rig = new Rig(paths: 1);
        var read = rig.Device.ReadAsync(0, new byte[512]);
        var frame = rig.A.Take()[0];
        var reply = rig.Answer(frame);
        rig.Deliver(rig.A, reply);
        rig.Deliver(rig.A, reply);
        Assert.True(read.IsCompletedSuccessfully);
        Assert.Equal(1, rig.Device.Statistics.StaleReplies);
    }

    [Fact]
    public void A_short_read_reply_is_not_trusted_and_the_frame_is_retransmitted()
    {
        var rig = new Rig(paths: 1);
        var read = rig.Device.ReadAsync(0, new byte[4 * 512]);
        var frame = rig.A.Take()[0];
        var reply = rig.Answer(frame);
        rig.Deliver(rig.A, reply[..(36 + 512)]);
        Assert.False(read.IsCompleted);
        rig.Tick(TimeSpan.FromMilliseconds(10));
        rig.Deliver(rig.A, rig.Answer(rig.A.Take()[0]));
        Assert.True(read.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task A_path_silent_for_PathTimeout_is_marked_down_its_frames_move_and_a_probe_brings_it_back()
    {
        var rig = new Rig(options: new AoeInitiatorOptions { PathTimeout = TimeSpan.FromSeconds(3), ProbeInterval = TimeSpan.FromMilliseconds(500) });
        var read = rig.Device.ReadAsync(0, new byte[64 * 17 * 512]);
        // Path B answers, path A is dead.
        for (var t = 0; t < 3100; t += 10)
        {
            rig.A.Take();
            foreach (var frame in rig.B.Take())
                rig.Deliver(rig.B, rig.Answer(frame));
            rig.Tick(TimeSpan.FromMilliseconds(10));
            if (rig.PathA.State == AoePathState.Down)
                break;
        }
        Assert.Equal(AoePathState.Down, rig.PathA.State);
        Assert.Equal(0, rig.PathA.Outstanding);
        rig.A.Take(); // path A stays dead: its probes go unanswered
        rig.Pump();
        await read;
        Assert.Equal(AoePathState.Up, rig.PathB.State);

        // The down path is probed with a config query padded to its full frame size.
        rig.A.Take();
        rig.Tick(TimeSpan.FromMilliseconds(600));
        var probe = Assert.Single(rig.A.Take());
        Assert.True(AoeHeader.TryRead(probe, out var header));
        Assert.Equal(AoeCommand.QueryConfig, header.Command);
        Assert.Equal(TargetA, header.Destination);
        Assert.Equal(14 + 22 + 17 * 512, probe.Length); // the largest data frame the path carries
        rig.Deliver(rig.A, Replies.Config(probe, 17, 64));
        Assert.Equal(AoePathState.Up, rig.PathA.State);
        Assert.Equal(4, rig.PathA.Window);
    }

    [Fact]
    public async Task A_path_that_returns_with_a_small_window_gets_frames_next_to_a_path_whose_window_is_large()
    {
        var rig = new Rig(options: new AoeInitiatorOptions { InitialWindow = 4, PathTimeout = TimeSpan.FromSeconds(1), ProbeInterval = TimeSpan.FromMilliseconds(100) });
        var warmUp = rig.Device.ReadAsync(0, new byte[2 << 20]);
        rig.Pump();
        await warmUp;
        // Path A dies under load; path B carries on.
        var read = Task.CompletedTask;
        for (var t = 0; t < 1100 && rig.PathA.State != AoePathState.Down; t += 10)
        {
            if (read.IsCompleted)
                read = rig.Device.ReadAsync(0, new byte[64 * 17 * 512]).AsTask();
            rig.A.Take();
            foreach (var frame in rig.B.Take())
                rig.Deliver(rig.B, rig.Answer(frame));
            rig.Tick(TimeSpan.FromMilliseconds(10));
        }
        rig.A.Take(); // its probe goes unanswered
        rig.Pump();
        await read;
        Assert.Equal(AoePathState.Down, rig.PathA.State);
        Assert.True(rig.PathB.Window > 16, $"path B's window grew to {rig.PathB.Window}");
        rig.Tick(TimeSpan.FromMilliseconds(200));
        rig.Deliver(rig.A, Replies.Config(rig.A.Take().Last(), 17, 64));
        Assert.Equal(4, rig.PathA.Window);

        // A load of eight frames at a time, as a VM with a few requests in flight makes, must reach the returned path.
        var sentBefore = rig.PathA.FramesSent;
        for (var i = 0; i < 10; i++)
        {
            var small = rig.Device.ReadAsync(0, new byte[8 * 17 * 512]);
            rig.Pump();
            await small;
        }
        Assert.True(rig.PathA.FramesSent - sentBefore >= 30, $"the returned path carried {rig.PathA.FramesSent - sentBefore} of 80 frames");
    }

    [Fact]
    public async Task A_frame_too_big_for_the_remaining_path_is_cut_into_frames_that_path_carries()
    {
        var rig = new Rig(mtuB: 1500, options: new AoeInitiatorOptions { PathTimeout = TimeSpan.FromSeconds(1) });
        Random.Shared.NextBytes(rig.Disk.AsSpan(0, 64 * 512));
        var back = new byte[64 * 512];
        var read = rig.Device.ReadAsync(0, back);
        // Path A (17 sectors per frame) dies; path B carries 2.
        for (var t = 0; t < 1200 && rig.PathA.State != AoePathState.Down; t += 10)
        {
            rig.A.Take();
            foreach (var frame in rig.B.Take())
                rig.Deliver(rig.B, rig.Answer(frame));
            rig.Tick(TimeSpan.FromMilliseconds(10));
        }
        Assert.Equal(AoePathState.Down, rig.PathA.State);
        rig.A.Take();
        foreach (var frame in rig.B.Sent)
        {
            AtaHeader.TryRead(frame, out var ata);
            Assert.True(ata.SectorCount <= 2);
        }
        rig.Pump();
        await read;
        Assert.Equal(rig.Disk.AsSpan(0, back.Length).ToArray(), back);
    }

    [Fact]
    public void Reserved_by_another_host_fails_at_once_with_NotPermitted_and_is_not_retried()
    {
        var rig = new Rig(paths: 1);
        var write = rig.Device.WriteAsync(0, new byte[64 * 512]);
        var frames = rig.A.Take();
        rig.Deliver(rig.A, Replies.Refusal(frames[0], AoeError.TargetReserved));
        Assert.True(write.IsFaulted);
        var error = Assert.Throws<BlockDeviceException>(() => write.GetAwaiter().GetResult());
        Assert.Equal(BlockError.NotPermitted, error.Error);
        rig.Tick(TimeSpan.FromSeconds(1));
        Assert.Empty(rig.A.Sent);
        Assert.Equal(0, rig.PathA.Outstanding);
    }

    [Theory]
    [InlineData(AtaStatus.IdNotFound, BlockError.Invalid)]
    [InlineData(AtaStatus.Abort, BlockError.Invalid)]
    [InlineData(AtaStatus.Uncorrectable, BlockError.Io)]
    public void An_ata_error_status_maps_to_a_block_error(byte ataError, BlockError expected)
    {
        var rig = new Rig(paths: 1);
        var read = rig.Device.ReadAsync(0, new byte[512]);
        rig.Deliver(rig.A, Replies.Ata(rig.A.Take()[0], status: AtaStatus.Ready | AtaStatus.Error, error: ataError));
        var error = Assert.Throws<BlockDeviceException>(() => read.GetAwaiter().GetResult());
        Assert.Equal(expected, error.Error);
    }

    [Fact]
    public void Other_aoe_errors_are_Io()
    {
        var rig = new Rig(paths: 1);
        var read = rig.Device.ReadAsync(0, new byte[512]);
        rig.Deliver(rig.A, Replies.Refusal(rig.A.Take()[0], AoeError.DeviceUnavailable));
        Assert.Equal(BlockError.Io, Assert.Throws<BlockDeviceException>(() => read.GetAwaiter().GetResult()).Error);
    }

    [Fact]
    public void With_no_answer_on_any_path_requests_fail_with_Io_after_DeviceTimeout_not_before()
    {
        var rig = new Rig(options: new AoeInitiatorOptions { PathTimeout = TimeSpan.FromSeconds(3), DeviceTimeout = TimeSpan.FromSeconds(5) });
        var read = rig.Device.ReadAsync(0, new byte[8 * 17 * 512]);
        for (var t = 0; t < 4900; t += 50)
            rig.Tick(TimeSpan.FromMilliseconds(50));
        Assert.False(read.IsCompleted);
        Assert.Equal(AoePathState.Down, rig.PathA.State);
        Assert.Equal(AoePathState.Down, rig.PathB.State);
        rig.Tick(TimeSpan.FromMilliseconds(200));
        Assert.True(read.IsFaulted);
        Assert.Equal(BlockError.Io, Assert.Throws<BlockDeviceException>(() => read.GetAwaiter().GetResult()).Error);
        Assert.Equal(0, rig.Device.ActiveRequests);
    }

    [Fact]
    public async Task A_path_that_returns_before_DeviceTimeout_completes_parked_frames()
    {
        var rig = new Rig(paths: 1, options: new AoeInitiatorOptions { PathTimeout = TimeSpan.FromSeconds(1), DeviceTimeout = TimeSpan.FromSeconds(5) });
        var read = rig.Device.ReadAsync(0, new byte[4 * 512]);
        for (var t = 0; t < 1500; t += 50)
            rig.Tick(TimeSpan.FromMilliseconds(50));
        Assert.Equal(AoePathState.Down, rig.PathA.State);
        var probe = rig.A.Take().Last();
        rig.Deliver(rig.A, Replies.Config(probe, 17, 64));
        rig.Tick(TimeSpan.FromMilliseconds(1));
        rig.Pump();
        await read;
    }

    [Fact]
    public void A_cancelled_read_fails_with_cancellation_and_its_late_reply_is_ignored()
    {
        var rig = new Rig(paths: 1);
        using var cts = new CancellationTokenSource();
        var read = rig.Device.ReadAsync(0, new byte[512], cts.Token);
        var frame = rig.A.Take()[0];
        cts.Cancel();
        Assert.True(read.IsCanceled || read.IsFaulted);
        Assert.ThrowsAny<OperationCanceledException>(() => read.GetAwaiter().GetResult());
        rig.Deliver(rig.A, rig.Answer(frame));
        Assert.Equal(1, rig.Device.Statistics.StaleReplies);
        Assert.Equal(0, rig.PathA.Outstanding);
    }

    [Fact]
    public void Unaligned_or_out_of_range_requests_are_Invalid_without_a_frame()
    {
        var rig = new Rig(paths: 1);
        Assert.Equal(BlockError.Invalid, Assert.Throws<BlockDeviceException>(() => rig.Device.ReadAsync(100, new byte[512]).GetAwaiter().GetResult()).Error);
        Assert.Equal(BlockError.Invalid, Assert.Throws<BlockDeviceException>(() => rig.Device.ReadAsync(rig.Disk.Length, new byte[512]).GetAwaiter().GetResult()).Error);
        Assert.Empty(rig.A.Sent);
    }

    [Fact]
    public async Task Identify_reads_the_lba48_size_and_strings()
    {
        var rig = new Rig(paths: 1);
        var identify = rig.Device.IdentifyAsync(CancellationToken.None);
        var request = Assert.Single(rig.A.Take());
        AtaHeader.TryRead(request, out var ata);
        Assert.Equal(AtaCommands.IdentifyDevice, ata.CommandOrStatus);
        var page = new byte[512];
        IdentifyDevice.Write(page, 0x1_0000_0000UL, "SER1", "Model X", "1.0", writeBack: false);
        rig.Deliver(rig.A, Replies.Ata(request, data: page));
        await identify;
        Assert.Equal(0x1_0000_0000L * 512, rig.Device.Size);
        Assert.Equal("Model X", rig.Device.Model);
        Assert.Equal("SER1", rig.Device.SerialNumber);
    }

    [Fact]
    public async Task A_control_command_is_retried_on_the_next_path_until_answered()
    {
        var rig = new Rig();
        var config = rig.Device.ReadConfigAsync();
        var first = rig.A.Take().Concat(rig.B.Take()).Single();
        rig.Tick(TimeSpan.FromMilliseconds(250));
        var second = rig.A.Take().Concat(rig.B.Take()).Single();
        Assert.NotEqual(MacAddress.Read(first), MacAddress.Read(second)); // went to the other target MAC
        rig.Deliver(MacAddress.Read(second) == TargetA ? rig.A : rig.B, Replies.Config(second, 17, 64, "owner=x"u8.ToArray()));
        Assert.Equal("owner=x"u8.ToArray(), await config);
    }

    [Fact]
    public async Task A_config_test_that_gets_no_answer_is_false_after_the_wait()
    {
        var rig = new Rig(paths: 1);
        var test = rig.Device.TestConfigAsync("nope"u8.ToArray(), prefix: false, TimeSpan.FromSeconds(1));
        rig.Tick(TimeSpan.FromMilliseconds(500));
        Assert.False(test.IsCompleted);
        rig.Tick(TimeSpan.FromMilliseconds(600));
        Assert.False(await test);
    }
}
