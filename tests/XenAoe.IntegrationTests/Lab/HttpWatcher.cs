using System.Diagnostics;
using System.Globalization;

namespace XenAoe.IntegrationTests.Lab;

/// <summary>Polls a URL inside a namespace every 50 ms: how many answers, how many failures, and whether the number ever went back.</summary>
internal sealed class HttpWatcher : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private long _answers, _failures, _first = -1, _latest = -1;
    private bool _monotonic = true;
    private double _slowest;

    private HttpWatcher(string ns, string url) => _loop = Task.Run(() => RunAsync(ns, url));

    public long Latest => Interlocked.Read(ref _latest);

    public static HttpWatcher Start(string ns, string url) => new(ns, url);

    public Task WaitForAnswersAsync(int count)
    {
        var target = Interlocked.Read(ref _answers) + count;
        return Eventually.TrueAsync(() => Interlocked.Read(ref _answers) >= target, TimeSpan.FromSeconds(60), $"{count} more HTTP answers from the VM");
    }

    private async Task RunAsync(string ns, string url)
    {
        // A request answered late is slow, not lost: a browser waits longer than a VM's disk stalls when a disk server dies.
        using var http = XenAoe.Os.NamespaceHttp.Create(ns, TimeSpan.FromSeconds(10));
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var started = Stopwatch.GetTimestamp();
                var value = long.Parse((await http.GetStringAsync(url, _stop.Token)).Trim(), CultureInfo.InvariantCulture);
                _slowest = Math.Max(_slowest, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                if (value < Latest)
                    _monotonic = false;
                if (_first < 0)
                    _first = value;
                Interlocked.Exchange(ref _latest, value);
                Interlocked.Increment(ref _answers);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or FormatException)
            {
                Interlocked.Increment(ref _failures);
            }
            await Task.Delay(TimeSpan.FromMilliseconds(50), CancellationToken.None);
        }
    }

    public async Task<(long Answers, long Failures, long First, long Last, bool Monotonic, double SlowestMs)> StopAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        return (_answers, _failures, _first, _latest, _monotonic, _slowest);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
            await StopAsync();
        _stop.Dispose();
    }
}
