using XenAoe.Block;

namespace XenAoe.Mirror.Tests;

public sealed class PendingBlockDeviceTests
{
    [Fact]
    public async Task Requests_wait_until_a_device_is_activated_and_then_reach_it()
    {
        var pending = new PendingBlockDevice(1 << 20);
        var write = pending.WriteAsync(4096, new byte[] { 1, 2, 3, 4 }.Concat(new byte[508]).ToArray()).AsTask();
        var flush = pending.FlushAsync().AsTask();
        await Task.Delay(50);
        Assert.False(write.IsCompleted || flush.IsCompleted, "nothing completes before activation");

        var leg = new TestBlockDevice(1 << 20);
        pending.Activate(leg);
        await write;
        await flush;
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, leg.Data.AsSpan(4096, 4).ToArray());
        var back = new byte[512];
        await pending.ReadAsync(4096, back);
        Assert.Equal(1, back[0]);
    }

    [Fact]
    public async Task Before_activation_reads_go_to_the_preview_while_writes_wait_and_after_it_everything_goes_to_the_device()
    {
        var preview = new TestBlockDevice(1 << 20);
        preview.Data[0] = 0x55;
        var pending = new PendingBlockDevice(1 << 20, preview: preview);
        var probe = new byte[512];
        await pending.ReadAsync(0, probe);
        Assert.Equal(0x55, probe[0]);
        var write = pending.WriteAsync(0, new byte[512]).AsTask();
        await Task.Delay(50);
        Assert.False(write.IsCompleted, "a write waits for the activation even with a preview");

        var device = new TestBlockDevice(1 << 20);
        device.Data[0] = 0x77;
        pending.Activate(device);
        await write;
        Assert.Equal(0, preview.BytesWritten);
        await pending.ReadAsync(512, probe);
        await pending.ReadAsync(0, probe);
        Assert.Equal(0, probe[0]); // the write that waited landed on the device, and reads now come from it
    }

    [Fact]
    public async Task A_device_of_another_size_is_refused_and_a_second_activation_too()
    {
        var pending = new PendingBlockDevice(1 << 20);
        Assert.Throws<ArgumentException>(() => pending.Activate(new TestBlockDevice(2 << 20)));
        pending.Activate(new TestBlockDevice(1 << 20));
        Assert.Throws<InvalidOperationException>(() => pending.Activate(new TestBlockDevice(1 << 20)));
        await pending.DisposeAsync();
    }

    [Fact]
    public async Task Failing_it_fails_waiting_and_later_requests_with_Io_and_the_reason()
    {
        var pending = new PendingBlockDevice(1 << 20);
        var read = pending.ReadAsync(0, new byte[512]).AsTask();
        pending.Fail("migration failed");
        var waiting = await Assert.ThrowsAsync<BlockDeviceException>(() => read);
        Assert.Equal(BlockError.Io, waiting.Error);
        Assert.Contains("migration failed", waiting.Message);
        await Assert.ThrowsAsync<BlockDeviceException>(() => pending.FlushAsync().AsTask());
    }

    [Fact]
    public async Task A_waiting_request_can_be_cancelled()
    {
        var pending = new PendingBlockDevice(1 << 20);
        using var cancel = new CancellationTokenSource();
        var read = pending.ReadAsync(0, new byte[512], cancel.Token).AsTask();
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => read);
    }
}

public sealed class BlockImageTests
{
    [Fact]
    public async Task An_image_lands_at_the_start_of_the_device_with_its_last_sector_padded_and_progress_reaches_the_end()
    {
        var path = Path.GetTempFileName();
        try
        {
            var data = new byte[(9 << 20) + 100];
            Random.Shared.NextBytes(data);
            await File.WriteAllBytesAsync(path, data);
            var leg = new TestBlockDevice(16 << 20);
            leg.Data.AsSpan().Fill(0xEE);
            var progress = new HighestProgress();
            var written = await BlockImage.WriteAsync(path, leg, progress);
            Assert.Equal((9 << 20) + 512, written);
            Assert.Equal(written, progress.Highest);
            Assert.Equal(data, leg.Data.AsSpan(0, data.Length).ToArray());
            Assert.All(leg.Data.AsSpan(data.Length, 412).ToArray(), b => Assert.Equal(0, b));
            Assert.Equal(0xEE, leg.Data[written]);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private sealed class HighestProgress : IProgress<long>
    {
        private long _highest;

        public long Highest => Interlocked.Read(ref _highest);

        public void Report(long value)
        {
            long seen;
            while ((seen = Interlocked.Read(ref _highest)) < value && Interlocked.CompareExchange(ref _highest, value, seen) != seen)
            {
            }
        }
    }

    [Fact]
    public async Task An_image_larger_than_the_device_is_refused_before_anything_is_written()
    {
        var path = Path.GetTempFileName();
        try
        {
            await File.WriteAllBytesAsync(path, new byte[2 << 20]);
            var leg = new TestBlockDevice(1 << 20);
            var error = await Assert.ThrowsAsync<ArgumentException>(() => BlockImage.WriteAsync(path, leg));
            Assert.Contains("larger than the device", error.Message);
            Assert.Equal(0, leg.BytesWritten);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
