namespace XenAoe.Initiator;

/// <summary>
/// Retransmission timeout of one path from measured round trips, after Jacobson/Karels (RFC 6298): srtt and rttvar are
/// exponentially smoothed (gains 1/8 and 1/4), RTO = srtt + max(G, 4 * rttvar) clamped to [min, max], where G is the clock
/// granularity (the retransmission timer's tick: it cannot act on finer differences), doubled on each loss episode
/// (exponential back-off) until the next valid sample. Callers apply Karn's rule: no sample from a retransmitted frame,
/// whose reply cannot be matched to one transmission. Not thread-safe: the owning device's lock guards it.
/// </summary>
/// <remarks>
/// The RTO also never falls below 1.25 × the largest round trip of the last one to two seconds (two one-second buckets), as
/// Linux TCP keeps rttvar from decaying below a recent maximum deviation. Why: a target's latency is spiky (an fsync, a
/// descheduled process on a busy host), and rttvar forgets a spike within a few dozen samples, which at thousands of frames per
/// second is milliseconds. Measured here against a write-through target on ext4 with other load on the machine: without this
/// floor about 12% of frames timed out spuriously and each episode halved the window (writes fell from ~110 to ~10-30 MB/s).
/// The cost is a later retransmission of a really lost frame: at most 1.25 × the recent worst round trip.
/// </remarks>
internal sealed class RttEstimator
{
    private readonly long _minTicks;
    private readonly long _maxTicks;
    private readonly long _initialTicks;
    private readonly long _granularityTicks;
    private const long MaxWindowTicks = TimeSpan.TicksPerSecond;

    private long _srtt;
    private long _maxWindowStart;
    private long _maxCurrent;
    private long _maxPrevious;
    private long _rttvar;
    private long _rto;

    public RttEstimator(TimeSpan min, TimeSpan max, TimeSpan initial, TimeSpan granularity = default)
    {
        _granularityTicks = granularity.Ticks;
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(min, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(max, min);
        _minTicks = min.Ticks;
        _maxTicks = max.Ticks;
        _initialTicks = Math.Clamp(initial.Ticks, _minTicks, _maxTicks);
        _rto = _initialTicks;
    }

    /// <summary>True once a round trip has been measured.</summary>
    public bool HasSample { get; private set; }

    public TimeSpan Smoothed => TimeSpan.FromTicks(_srtt);
    public TimeSpan Variance => TimeSpan.FromTicks(_rttvar);
    public TimeSpan Timeout => TimeSpan.FromTicks(_rto);

    /// <summary>Back-offs applied since the last sample.</summary>
    public int Backoffs { get; private set; }

    /// <summary>Largest sample of the last one to two seconds.</summary>
    public TimeSpan RecentMax => TimeSpan.FromTicks(Math.Max(_maxCurrent, _maxPrevious));

    /// <param name="now">Monotonic time of the sample, for the recent-maximum buckets.</param>
    public void AddSample(TimeSpan rtt, TimeSpan now = default)
    {
        var r = Math.Max(rtt.Ticks, 1);
        var age = now.Ticks - _maxWindowStart;
        if (age >= MaxWindowTicks)
        {
            _maxPrevious = age >= 2 * MaxWindowTicks ? 0 : _maxCurrent;
            _maxCurrent = 0;
            _maxWindowStart = now.Ticks;
        }
        _maxCurrent = Math.Max(_maxCurrent, r);
        if (!HasSample)
        {
            _srtt = r;
            _rttvar = r / 2;
            HasSample = true;
        }
        else
        {
            _rttvar += (Math.Abs(_srtt - r) - _rttvar) / 4;
            _srtt += (r - _srtt) / 8;
        }
        Backoffs = 0;
        _rto = Computed();
    }

    /// <summary>Doubles the timeout (up to the maximum) after a loss.</summary>
    public void Backoff()
    {
        Backoffs++;
        _rto = Math.Min(_maxTicks, _rto * 2);
    }

    /// <summary>Drops the back-off (a path that answered again), keeping the measured srtt and rttvar.</summary>
    public void ResetBackoff()
    {
        Backoffs = 0;
        _rto = HasSample ? Computed() : _initialTicks;
    }

    private long Computed()
    {
        var recentMax = Math.Max(_maxCurrent, _maxPrevious);
        return Math.Clamp(Math.Max(_srtt + Math.Max(_granularityTicks, 4 * _rttvar), recentMax + recentMax / 4), _minTicks, _maxTicks);
    }
}
