namespace XenAoe.Initiator.Tests;

public sealed class RttEstimatorTests
{
    private static readonly TimeSpan Min = TimeSpan.FromMilliseconds(1);
    private static readonly TimeSpan Max = TimeSpan.FromSeconds(1);

    [Fact]
    public void Before_any_sample_the_timeout_is_the_initial_one()
    {
        var rtt = new RttEstimator(Min, Max, TimeSpan.FromMilliseconds(50));
        Assert.False(rtt.HasSample);
        Assert.Equal(TimeSpan.FromMilliseconds(50), rtt.Timeout);
    }

    [Fact]
    public void The_first_sample_sets_srtt_to_it_and_rttvar_to_half_of_it()
    {
        var rtt = new RttEstimator(Min, Max, TimeSpan.FromMilliseconds(50));
        rtt.AddSample(TimeSpan.FromMilliseconds(10));
        Assert.Equal(TimeSpan.FromMilliseconds(10), rtt.Smoothed);
        Assert.Equal(TimeSpan.FromMilliseconds(5), rtt.Variance);
        Assert.Equal(TimeSpan.FromMilliseconds(30), rtt.Timeout); // srtt + 4 * rttvar
    }

    [Fact]
    public void Later_samples_are_smoothed_with_gains_of_one_eighth_and_one_quarter()
    {
        var rtt = new RttEstimator(Min, Max, TimeSpan.FromMilliseconds(50));
        rtt.AddSample(TimeSpan.FromMilliseconds(10));
        rtt.AddSample(TimeSpan.FromMilliseconds(18));
        // rttvar = 5 + (|10 - 18| - 5) / 4 = 5.75; srtt = 10 + (18 - 10) / 8 = 11
        Assert.Equal(TimeSpan.FromMilliseconds(11), rtt.Smoothed);
        Assert.Equal(TimeSpan.FromMilliseconds(5.75), rtt.Variance);
        Assert.Equal(TimeSpan.FromMilliseconds(34), rtt.Timeout);
    }

    [Fact]
    public void A_steady_round_trip_converges_and_the_timeout_never_drops_below_the_floor()
    {
        var rtt = new RttEstimator(Min, Max, TimeSpan.FromMilliseconds(50));
        for (var i = 0; i < 200; i++)
            rtt.AddSample(TimeSpan.FromMicroseconds(80));
        Assert.InRange(rtt.Smoothed.TotalMicroseconds, 79, 81);
        Assert.True(rtt.Variance < TimeSpan.FromMicroseconds(5));
        Assert.Equal(Min, rtt.Timeout);
    }

    [Fact]
    public void The_clock_granularity_is_added_when_the_variance_is_smaller()
    {
        var rtt = new RttEstimator(Min, Max, TimeSpan.FromMilliseconds(50), granularity: TimeSpan.FromMilliseconds(1));
        for (var i = 0; i < 200; i++)
            rtt.AddSample(TimeSpan.FromMicroseconds(300));
        Assert.InRange(rtt.Timeout.TotalMicroseconds, 1299, 1301); // srtt + max(G, 4 * rttvar)
    }

    [Fact]
    public void A_recent_spike_keeps_the_timeout_above_it_for_one_to_two_seconds()
    {
        var rtt = new RttEstimator(Min, Max, TimeSpan.FromMilliseconds(50));
        var now = TimeSpan.FromSeconds(10);
        rtt.AddSample(TimeSpan.FromMilliseconds(20), now);
        for (var i = 0; i < 500; i++)
        {
            now += TimeSpan.FromMilliseconds(1);
            rtt.AddSample(TimeSpan.FromMilliseconds(1), now);
        }
        // rttvar has long forgotten the spike; the recent maximum has not.
        Assert.True(rtt.Variance < TimeSpan.FromMilliseconds(0.1));
        Assert.Equal(TimeSpan.FromMilliseconds(20), rtt.RecentMax);
        Assert.Equal(TimeSpan.FromMilliseconds(25), rtt.Timeout);
        for (var i = 0; i < 2100; i++)
        {
            now += TimeSpan.FromMilliseconds(1);
            rtt.AddSample(TimeSpan.FromMilliseconds(1), now);
        }
        Assert.Equal(TimeSpan.FromMilliseconds(1), rtt.RecentMax);
        Assert.True(rtt.Timeout < TimeSpan.FromMilliseconds(2));
    }

    [Fact]
    public void The_timeout_is_capped_at_the_ceiling()
    {
        var rtt = new RttEstimator(Min, Max, TimeSpan.FromMilliseconds(50));
        rtt.AddSample(TimeSpan.FromSeconds(2));
        Assert.Equal(Max, rtt.Timeout);
    }

    [Fact]
    public void Backoff_doubles_the_timeout_up_to_the_ceiling_and_a_sample_ends_it()
    {
        var rtt = new RttEstimator(Min, Max, TimeSpan.FromMilliseconds(50));
        rtt.AddSample(TimeSpan.FromMilliseconds(100)); // RTO 300 ms
        rtt.Backoff();
        Assert.Equal(TimeSpan.FromMilliseconds(600), rtt.Timeout);
        rtt.Backoff();
        Assert.Equal(Max, rtt.Timeout);
        Assert.Equal(2, rtt.Backoffs);
        rtt.AddSample(TimeSpan.FromMilliseconds(100));
        Assert.Equal(0, rtt.Backoffs);
        Assert.True(rtt.Timeout < TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public void Resetting_the_backoff_keeps_the_measured_estimate()
    {
        var rtt = new RttEstimator(Min, Max, TimeSpan.FromMilliseconds(50));
        rtt.AddSample(TimeSpan.FromMilliseconds(10));
        rtt.Backoff();
        rtt.Backoff();
        rtt.ResetBackoff();
        Assert.Equal(TimeSpan.FromMilliseconds(30), rtt.Timeout);
        Assert.Equal(TimeSpan.FromMilliseconds(10), rtt.Smoothed);
    }
}
