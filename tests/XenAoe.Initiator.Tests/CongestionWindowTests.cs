namespace XenAoe.Initiator.Tests;

public sealed class CongestionWindowTests
{
    [Fact]
    public void The_window_starts_at_the_initial_size_capped_by_the_maximum()
    {
        Assert.Equal(4, new CongestionWindow(4, 128).Limit);
        Assert.Equal(2, new CongestionWindow(4, 2).Limit);
    }

    [Fact]
    public void Slow_start_doubles_the_window_every_round_trip_until_the_target_buffer_count()
    {
        var window = new CongestionWindow(4, 16);
        // One round trip: every frame of the window is acknowledged, each adding one.
        var sizes = new List<int>();
        for (var trip = 0; trip < 4; trip++)
        {
            var inFlight = window.Limit;
            for (var i = 0; i < inFlight; i++)
                window.OnAck();
            sizes.Add(window.Limit);
        }
        Assert.Equal([8, 16, 16, 16], sizes);
    }

    [Fact]
    public void A_loss_halves_the_window_and_growth_becomes_additive()
    {
        var window = new CongestionWindow(32, 64);
        Assert.True(window.OnLoss(sentAt: 100, now: 200));
        Assert.Equal(16, window.Limit);
        Assert.Equal(16, window.SlowStartThreshold);
        for (var i = 0; i < 16; i++)
            window.OnAck();
        // Congestion avoidance: about one frame per window of acknowledgements, where slow start would have doubled.
        Assert.InRange(window.Value, 16.9, 17.0);
        window.OnAck();
        Assert.Equal(17, window.Limit);
    }

    [Fact]
    public void Frames_lost_together_halve_the_window_once()
    {
        var window = new CongestionWindow(64, 64);
        Assert.True(window.OnLoss(sentAt: 100, now: 500));
        for (var i = 0; i < 20; i++)
            Assert.False(window.OnLoss(sentAt: 100 + i, now: 501 + i));
        Assert.Equal(32, window.Limit);
        // A frame sent after the halving and lost again is a new episode.
        Assert.True(window.OnLoss(sentAt: 600, now: 900));
        Assert.Equal(16, window.Limit);
    }

    [Fact]
    public void The_window_never_falls_below_one_frame()
    {
        var window = new CongestionWindow(2, 8);
        for (var i = 0; i < 10; i++)
            window.OnLoss(sentAt: i * 10, now: i * 10 + 5);
        Assert.Equal(1, window.Limit);
        Assert.Equal(1, window.Value);
    }

    [Fact]
    public void Reset_returns_to_the_initial_window_with_slow_start_up_to_the_cap()
    {
        var window = new CongestionWindow(4, 32);
        window.OnLoss(0, 1);
        window.Reset(now: 10);
        Assert.Equal(4, window.Limit);
        Assert.Equal(32, window.SlowStartThreshold);
        Assert.False(window.OnLoss(sentAt: 5, now: 11)); // sent before the reset: part of the old episode
    }

    [Fact]
    public void Lowering_the_cap_shrinks_a_larger_window()
    {
        var window = new CongestionWindow(4, 128);
        for (var i = 0; i < 100; i++)
            window.OnAck();
        window.SetMax(16);
        Assert.Equal(16, window.Limit);
    }
}
