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

        var leg = TestLeg.New(1 << 20);
        pending.Activate(leg);
        await write;
        await flush;
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, leg.Disk.AsSpan(4096, 4).ToArray());
        var back = new byte[512];
        await pending.ReadAsync(4096, back);
        Assert.Equal(1, back[0]);
    }

    [Fact]
    public async Task A_device_of_another_size_is_refused_and_a_second_activation_too()
    {
        var pending = new PendingBlockDevice(1 << 20);
        Assert.Throws<ArgumentException>(() => pending.Activate(TestLeg.New(2 << 20)));
        pending.Activate(TestLeg.New(1 << 20));
        Assert.Throws<InvalidOperationException>(() => pending.Activate(TestLeg.New(1 << 20)));
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
