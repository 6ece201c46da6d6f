namespace XenAoe.Initiator;

/// <summary>
/// How many frames one path may have outstanding. Starts small, grows by one frame per acknowledged frame (slow start: doubles
/// every round trip) up to the slow-start threshold, then by one frame per window (congestion avoidance); halves on a loss
/// episode. A loss episode is one halving for all frames lost from one window: a frame sent before the last halving does not
/// halve again (TCP NewReno's recovery point), so a burst of 64 timeouts costs one halving, not 64. The cap is the smaller of
/// the configured maximum and the target's advertised buffer count: frames beyond what the target queues are simply dropped.
/// Not thread-safe: the owning device's lock guards it.
/// </summary>
internal sealed class CongestionWindow
{
    private readonly int _initial;
    private double _value;
    private double _threshold;
    private long _recoveryPoint = long.MinValue;

    public CongestionWindow(int initial, int max)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(initial, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        _initial = initial;
        Max = max;
        _value = Math.Min(initial, max);
        _threshold = max;
    }

    public int Max { get; private set; }

    /// <summary>The window as a fraction, for reporting.</summary>
    public double Value => _value;

    /// <summary>Frames that may be outstanding, at least 1.</summary>
    public int Limit => Math.Max(1, (int)_value);

    public double SlowStartThreshold => _threshold;

    /// <summary>One frame acknowledged.</summary>
    public void OnAck()
    {
        _value += _value < _threshold ? 1 : 1 / _value;
        if (_value > Max)
            _value = Max;
    }

    /// <summary>
    /// A frame sent at <paramref name="sentAt"/> was lost (timed out) at <paramref name="now"/>. Halves the window unless the
    /// frame was sent before the previous halving. Returns true when it halved (a new loss episode).
    /// </summary>
    public bool OnLoss(long sentAt, long now)
    {
        if (sentAt < _recoveryPoint)
            return false;
        _value = Math.Max(1, _value / 2);
        _threshold = _value;
        _recoveryPoint = now;
        return true;
    }

    /// <summary>Back to the initial window with slow start up to the cap: for a path that comes back after being down.</summary>
    public void Reset(long now)
    {
        _value = Math.Min(_initial, Max);
        _threshold = Max;
        _recoveryPoint = now;
    }

    public void SetMax(int max)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        Max = max;
        _threshold = Math.Min(_threshold, max);
        if (_value > max)
            _value = max;
    }
}
