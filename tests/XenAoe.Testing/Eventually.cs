using System.Diagnostics;

namespace XenAoe.Testing;

/// <summary>Waits for a condition with a deadline instead of sleeping; a miss says what was expected.</summary>
public static class Eventually
{
    /// <summary>For conditions of in-process code that should hold almost at once.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan s_firstPause = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan s_longestPause = TimeSpan.FromMilliseconds(250);

    /// <summary>Polls <paramref name="condition"/> (pausing 10 ms, growing to 250 ms) until it returns true or <paramref name="timeout"/> passes.</summary>
    /// <exception cref="TimeoutException">Names the expectation, the time waited and the last exception the condition threw, if any.</exception>
    public static async Task TrueAsync(Func<Task<bool>> condition, TimeSpan timeout, string expectation, CancellationToken ct = default)
    {
        _ = await ValueAsync(async () => await condition().ConfigureAwait(false) ? true : (bool?)null, timeout, expectation, ct).ConfigureAwait(false);
    }

    public static Task TrueAsync(Func<bool> condition, TimeSpan timeout, string expectation, CancellationToken ct = default) =>
        TrueAsync(() => Task.FromResult(condition()), timeout, expectation, ct);

    /// <summary>Polls <paramref name="probe"/> until it returns a non-null value and returns that value.</summary>
    public static async Task<T> ValueAsync<T>(Func<Task<T?>> probe, TimeSpan timeout, string expectation, CancellationToken ct = default)
        where T : struct
    {
        var value = await ReferenceAsync(async () => await probe().ConfigureAwait(false) is { } v ? new StrongBox<T>(v) : null, timeout, expectation, ct).ConfigureAwait(false);
        return value.Value;
    }

    /// <summary>Polls <paramref name="probe"/> until it returns a non-null reference and returns it.</summary>
    public static async Task<T> ReferenceAsync<T>(Func<Task<T?>> probe, TimeSpan timeout, string expectation, CancellationToken ct = default)
        where T : class
    {
        var clock = Stopwatch.StartNew();
        var pause = s_firstPause;
        Exception? last = null;
        var attempts = 0;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            attempts++;
            try
            {
                if (await probe().ConfigureAwait(false) is { } value)
                    return value;
                last = null;
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                // A probe may fail while the condition is not yet reachable (a process not started, a device not there); keep the last for the message.
                last = e;
            }
            if (clock.Elapsed >= timeout)
            {
                var message = $"Expected within {timeout.TotalSeconds:0.###} s: {expectation} (checked {attempts} times over {clock.Elapsed.TotalSeconds:0.###} s).";
                throw last is null ? new TimeoutException(message) : new TimeoutException($"{message} Last error: {last.Message}", last);
            }
            var remaining = timeout - clock.Elapsed;
            await Task.Delay(pause < remaining ? pause : remaining, ct).ConfigureAwait(false);
            pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, s_longestPause.Ticks));
        }
    }

    /// <summary>Awaits <paramref name="task"/> with a deadline; a miss says what was expected.</summary>
    public static async Task WithinAsync(Task task, string expectation, TimeSpan? timeout = null)
    {
        var limit = timeout ?? DefaultTimeout;
        try
        {
            await task.WaitAsync(limit).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"Expected within {limit.TotalSeconds:0.###} s: {expectation}.");
        }
    }

    public static async Task<T> WithinAsync<T>(Task<T> task, string expectation, TimeSpan? timeout = null)
    {
        await WithinAsync((Task)task, expectation, timeout).ConfigureAwait(false);
        return await task.ConfigureAwait(false);
    }

    private sealed class StrongBox<T>(T value)
        where T : struct
    {
        public T Value { get; } = value;
    }
}
