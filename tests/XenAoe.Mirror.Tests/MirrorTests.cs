using XenAoe.Block;

namespace XenAoe.Mirror.Tests;

public sealed class MirrorTests
{
    private const int Region = 64 << 10;
    private const long LegSize = 16 << 20;
    private static readonly MirrorOptions Options = new() { RegionSize = Region, CleanInterval = TimeSpan.FromMilliseconds(50), ResyncBytesPerSecond = 0 };

    private static byte[] Pattern(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    private static async Task<(Mirror Mirror, TestBlockDevice A, TestBlockDevice B)> NewMirrorAsync()
    {
        var (a, b) = (new TestBlockDevice(LegSize), new TestBlockDevice(LegSize));
        return (await Mirror.CreateAsync(a, b, Options, assumeClean: true), a, b);
    }

    private static void AssertLegsEqual(Mirror mirror, TestBlockDevice a, TestBlockDevice b)
    {
        var offset = (int)mirror.DataOffset;
        Assert.True(a.Data.AsSpan(offset, (int)mirror.Size).SequenceEqual(b.Data.AsSpan(offset, (int)mirror.Size)), "the legs' data differ");
    }

    [Fact]
    public async Task A_preview_reads_the_data_area_of_the_current_leg_refuses_writes_and_writes_nothing()
    {
        var (mirror, a, b) = await NewMirrorAsync();
        var data = Pattern(Region, 7);
        await mirror.WriteAsync(Region, data);
        await mirror.DisposeAsync();
        var (beforeA, beforeB) = (a.BytesWritten, b.BytesWritten);

        var preview = await Mirror.OpenPreviewAsync(a, b);
        Assert.Equal(mirror.Size, preview.Size);
        Assert.True(preview.ReadOnly);
        var back = new byte[Region];
        await preview.ReadAsync(Region, back);
        Assert.Equal(data, back);
        var refused = await Assert.ThrowsAsync<BlockDeviceException>(() => preview.WriteAsync(0, new byte[512]).AsTask());
        Assert.Equal(BlockError.NotPermitted, refused.Error);
        Assert.Equal((beforeA, beforeB), (a.BytesWritten, b.BytesWritten));
    }

    [Fact]
    public async Task A_preview_of_two_legs_without_mirror_metadata_is_refused_with_the_reason()
    {
        var error = await Assert.ThrowsAsync<MirrorAssemblyException>(() => Mirror.OpenPreviewAsync(new TestBlockDevice(LegSize), new TestBlockDevice(LegSize)));
        Assert.Contains("no complete leg to preview", error.Message);
    }

    [Fact]
    public async Task A_write_lands_on_both_legs_and_reads_back()
    {
        var (mirror, a, b) = await NewMirrorAsync();
        var data = Pattern(3 * Region, 1);
        await mirror.WriteAsync(Region / 2, data);
        var back = new byte[data.Length];
        await mirror.ReadAsync(Region / 2, back);
        Assert.Equal(data, back);
        AssertLegsEqual(mirror, a, b);
        Assert.Equal(MirrorHealth.Healthy, mirror.Status.Health);
        await mirror.DisposeAsync();
    }

    [Fact]
    public async Task Unaligned_or_out_of_range_requests_are_refused_before_touching_a_leg()
    {
        var (mirror, a, _) = await NewMirrorAsync();
        var before = a.BytesWritten;
        Assert.Equal(BlockError.Invalid, (await Assert.ThrowsAsync<BlockDeviceException>(() => mirror.WriteAsync(100, new byte[512]).AsTask())).Error);
        Assert.Equal(BlockError.Invalid, (await Assert.ThrowsAsync<BlockDeviceException>(() => mirror.ReadAsync(mirror.Size, new byte[512]).AsTask())).Error);
        Assert.Equal(before, a.BytesWritten);
        await mirror.DisposeAsync();
    }

    [Fact]
    public async Task A_failed_leg_does_not_fail_writes_and_the_survivor_starts_a_new_epoch()
    {
        var (mirror, a, b) = await NewMirrorAsync();
        var epoch = mirror.Status.Legs[0].Epoch;
        b.FailWith = BlockError.Io;
        await mirror.WriteAsync(0, Pattern(Region, 2));
        var status = mirror.Status;
        Assert.Equal(MirrorHealth.Degraded, status.Health);
        Assert.Equal(LegState.Failed, status.Legs[1].State);
        Assert.NotEqual(epoch, status.Legs[0].Epoch);
        var onDisk = MirrorSuperblock.TryRead(a.Data, out _)!;
        Assert.Equal(epoch, onDisk.ParentEpoch);
        var back = new byte[Region];
        await mirror.ReadAsync(0, back);
        Assert.Equal(Pattern(Region, 2), back);
        await mirror.DisposeAsync();
    }

    [Fact]
    public async Task A_returning_leg_gets_only_the_regions_written_while_it_was_away()
    {
        var (mirror, a, b) = await NewMirrorAsync();
        await mirror.WriteAsync(0, Pattern(8 * Region, 3));
        await Eventually(() => mirror.Status.DirtyRegions == 0, "the cleaner to clear quiet regions while healthy");
        b.FailWith = BlockError.Io;
        await mirror.WriteAsync(10 * Region, Pattern(Region, 4));
        await mirror.WriteAsync(20 * Region, Pattern(2 * Region, 5));
        Assert.Equal(3, mirror.Status.DirtyRegions);

        b.FailWith = null;
        await mirror.ReaddLegAsync(1, new TestBlockDevice(b.Data));
        await mirror.ResyncCompletion;
        Assert.Equal(MirrorHealth.Healthy, mirror.Status.Health);
        Assert.Equal(3L * Region, mirror.Status.ResyncDoneBytes);
        AssertLegsEqual(mirror, a, b);
        await mirror.DisposeAsync();
    }

    [Fact]
    public async Task After_a_host_crash_reassembly_resyncs_the_dirty_regions_from_one_leg_to_the_other()
    {
        var (mirror, a, b) = await NewMirrorAsync();
        await mirror.WriteAsync(5 * Region, Pattern(Region, 6));
        // The host dies between the two legs' writes of the next request: leg 0 has it, leg 1 does not.
        var torn = Pattern(Region, 7);
        torn.CopyTo(a.Data, mirror.DataOffset + 5 * Region);
        // No dispose: the superblocks stay "not clean", the bitmap bit of region 5 stays set on both legs.

        var reassembled = await Mirror.AssembleAsync(new TestBlockDevice(a.Data), new TestBlockDevice(b.Data), Options);
        await reassembled.ResyncCompletion;
        AssertLegsEqual(reassembled, a, b);
        Assert.Equal(torn, b.Data.AsSpan((int)(reassembled.DataOffset + 5 * Region), Region).ToArray());
        await reassembled.DisposeAsync();
    }

    [Fact]
    public async Task The_stale_leg_is_always_the_target_of_the_resync_and_never_read()
    {
        var (mirror, a, b) = await NewMirrorAsync();
        a.FailWith = BlockError.Io; // leg 0 goes away; leg 1 carries on alone
        var fresh = Pattern(4 * Region, 8);
        await mirror.WriteAsync(0, fresh);
        await mirror.DisposeAsync();
        a.FailWith = null;
        Array.Fill<byte>(a.Data, 0xEE, (int)mirror.DataOffset, 4 * Region); // stale garbage on leg 0

        var reassembled = await Mirror.AssembleAsync(new TestBlockDevice(a.Data), new TestBlockDevice(b.Data), Options);
        var back = new byte[fresh.Length];
        await reassembled.ReadAsync(0, back);
        Assert.Equal(fresh, back);
        await reassembled.ResyncCompletion;
        Assert.Equal(fresh, a.Data.AsSpan((int)reassembled.DataOffset, fresh.Length).ToArray());
        await reassembled.DisposeAsync();
    }

    [Fact]
    public async Task Two_legs_written_apart_are_refused_as_split_brain()
    {
        var (mirror, a, b) = await NewMirrorAsync();
        await mirror.DisposeAsync();
        var alone0 = await Mirror.AssembleAsync(new TestBlockDevice(a.Data), null, Options, allowDegraded: true);
        await alone0.WriteAsync(0, Pattern(Region, 9));
        await alone0.DisposeAsync();
        var alone1 = await Mirror.AssembleAsync(null, new TestBlockDevice(b.Data), Options, allowDegraded: true);
        await alone1.WriteAsync(0, Pattern(Region, 10));
        await alone1.DisposeAsync();

        var e = await Assert.ThrowsAsync<MirrorAssemblyException>(() => Mirror.AssembleAsync(new TestBlockDevice(a.Data), new TestBlockDevice(b.Data), Options));
        Assert.Contains("split brain", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task One_leg_alone_assembles_only_when_allowed()
    {
        var (mirror, a, _) = await NewMirrorAsync();
        await mirror.DisposeAsync();
        var e = await Assert.ThrowsAsync<MirrorAssemblyException>(() => Mirror.AssembleAsync(new TestBlockDevice(a.Data), null, Options));
        Assert.Contains("only one leg", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Legs_of_different_mirrors_are_refused()
    {
        var (m1, a, _) = await NewMirrorAsync();
        var (m2, _, d) = await NewMirrorAsync();
        await m1.DisposeAsync();
        await m2.DisposeAsync();
        var e = await Assert.ThrowsAsync<MirrorAssemblyException>(() => Mirror.AssembleAsync(new TestBlockDevice(a.Data), new TestBlockDevice(d.Data), Options));
        Assert.Contains("belongs to mirror", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_replaced_leg_is_filled_completely_and_reported_with_progress()
    {
        var (mirror, a, b) = await NewMirrorAsync();
        await mirror.WriteAsync(0, Pattern((int)mirror.Size, 11));
        b.FailWith = BlockError.Io;
        await mirror.WriteAsync(0, Pattern(Region, 12));
        var third = new TestBlockDevice(LegSize);
        await mirror.ReplaceLegAsync(1, third, "disk3");
        await mirror.ResyncCompletion;
        var status = mirror.Status;
        Assert.Equal(MirrorHealth.Healthy, status.Health);
        Assert.Equal(status.ResyncTotalBytes, status.ResyncDoneBytes);
        AssertLegsEqual(mirror, a, third);
        await mirror.DisposeAsync();
        var reassembled = await Mirror.AssembleAsync(new TestBlockDevice(a.Data), new TestBlockDevice(third.Data), Options);
        Assert.Equal(MirrorHealth.Healthy, reassembled.Status.Health);
        await reassembled.DisposeAsync();
    }

    [Fact]
    public async Task A_fenced_write_fails_to_the_caller_without_dropping_a_leg()
    {
        var (mirror, _, b) = await NewMirrorAsync();
        b.FailWith = BlockError.NotPermitted;
        var e = await Assert.ThrowsAsync<BlockDeviceException>(() => mirror.WriteAsync(0, new byte[512]).AsTask());
        Assert.Equal(BlockError.NotPermitted, e.Error);
        Assert.Equal(MirrorHealth.Healthy, mirror.Status.Health);
        b.FailWith = null;
        await mirror.DisposeAsync();
    }

    [Fact]
    public async Task Concurrent_writes_during_a_resync_leave_both_legs_identical()
    {
        var (mirror, a, b) = await NewMirrorAsync();
        b.FailWith = BlockError.Io;
        for (var i = 0; i < 64; i++)
            await mirror.WriteAsync(i * Region, Pattern(Region, 100 + i));
        b.FailWith = null;
        await mirror.ReaddLegAsync(1, new TestBlockDevice(b.Data));
        var writers = Enumerable.Range(0, 200).Select(i => mirror.WriteAsync((i % 64) * Region + 4096, Pattern(8192, 1000 + i)).AsTask());
        await Task.WhenAll(writers);
        await mirror.ResyncCompletion;
        AssertLegsEqual(mirror, a, b);
        await mirror.DisposeAsync();
    }

    private static async Task Eventually(Func<bool> condition, string expectation)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"timed out waiting for {expectation}");
            await Task.Delay(10);
        }
    }
}
