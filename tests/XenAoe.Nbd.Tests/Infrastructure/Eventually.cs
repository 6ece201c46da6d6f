using System.Diagnostics;

namespace XenAoe.Nbd.Tests.Infrastructure;

/// <summary>Waits for a condition with a deadline instead of sleeping; a miss says what was expected.</summary>
public static class Eventually
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Polls <paramref name="condition"/> (pausing 5 ms, growing to 100 ms) until true or the timeout passes.</summary>
    /// <exception cref="TimeoutException">Names the expectation and the time waited.</exception>
    public static async Task TrueAsync(Func<bool> condition, string expectation, TimeSpan? timeout = null)
    {
        var limit = timeout ?? DefaultTimeout;
        var clock = Stopwatch.StartNew();
        var pause = TimeSpan.FromMilliseconds(5);
        while (!condition())
        {
            if (clock.Elapsed >= limit)
                throw new TimeoutException($"Expected within {limit.TotalSeconds:0.###} s: {expectation}.");
            await Task.Delay(pause);
            pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, TimeSpan.FromMilliseconds(100).Ticks));
        }
    }

    /// <summary>Awaits <paramref name="task"/> with a deadline; a miss says what was expected.</summary>
    public static async Task<T> WithinAsync<T>(Task<T> task, string expectation, TimeSpan? timeout = null)
    {
        var limit = timeout ?? DefaultTimeout;
        try
        {
            return await task.WaitAsync(limit);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"Expected within {limit.TotalSeconds:0.###} s: {expectation}.");
        }
    }

    public static async Task WithinAsync(Task task, string expectation, TimeSpan? timeout = null)
    {
        var limit = timeout ?? DefaultTimeout;
        try
        {
            await task.WaitAsync(limit);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"Expected within {limit.TotalSeconds:0.###} s: {expectation}.");
        }
    }
}
