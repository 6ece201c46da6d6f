using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using XenAoe.Control.Model;
using XenAoe.Control.Store;

namespace XenAoe.Control.Jobs;

/// <summary>
/// Runs the jobs in the store, on the leading controller only: pending ones, and running ones a previous leader left behind
/// (resumed from their first unfinished step). One job per target at a time (submission refuses a second); different
/// targets run in parallel. A job interrupted more than <see cref="MaxAttempts"/> times is failed, not retried forever.
/// It looks for work when the targets' markers change (a job submitted or finished: a store watch), and every
/// <see cref="DefaultSafetyPoll"/> in case a watch missed something; it reads only the unfinished jobs, so a long history
/// costs it nothing.
/// </summary>
public sealed partial class JobRunner(ControllerState state, IReadOnlyList<IJob> kinds, string owner, ILogger<JobRunner> log, StepRetry? retry = null, TimeSpan? safetyPoll = null)
{
    public const int MaxAttempts = 3;
    public static readonly TimeSpan DefaultSafetyPoll = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan WatchRetry = TimeSpan.FromSeconds(1);
    private readonly Dictionary<string, IJob> _kinds = kinds.ToDictionary(k => k.Kind, StringComparer.Ordinal);
    private readonly TimeSpan _safetyPoll = safetyPoll ?? DefaultSafetyPoll;
    private readonly Dictionary<string, Task> _running = [];
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    /// <summary>Runs until <paramref name="ct"/> is cancelled (leadership lost or shutdown); jobs in flight are left for the next leader.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        using var stopWatching = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var watcher = WatchMarkersAsync(stopWatching.Token);
        Task<bool>? woken = null;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                foreach (var done in _running.Where(r => r.Value.IsCompleted).Select(r => r.Key).ToList())
                    _running.Remove(done);
                foreach (var job in await state.ActiveJobsAsync(ct).ConfigureAwait(false))
                {
                    if (!_running.ContainsKey(job.Id))
                        _running[job.Id] = RunOneAsync(job, ct);
                }
                // One wait kept across passes: a timed-out wait still takes the next wake-up.
                woken ??= _wake.Reader.WaitToReadAsync(ct).AsTask();
                try
                {
                    await woken.WaitAsync(_safetyPoll, state.Time, ct).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    // The safety poll.
                }
                if (woken.IsCompleted)
                {
                    woken = null;
                    _wake.Reader.TryRead(out _);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Leadership lost or stopping: the jobs' records say where they are.
        }
        await stopWatching.CancelAsync().ConfigureAwait(false);
        await watcher.ConfigureAwait(false);
        await Task.WhenAll(_running.Values).ConfigureAwait(false);
    }

    private async Task WatchMarkersAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await foreach (var _ in state.Store.WatchAsync(ControllerState.ActivePrefix, 0, ct).ConfigureAwait(false))
                    _wake.Writer.TryWrite(true);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is StoreUnavailableException or HttpRequestException or IOException)
            {
                // The watch is lost (a store member down, the change log compacted): the safety poll covers the gap.
                Log.WatchLost(log, e.Message);
                _wake.Writer.TryWrite(true);
                try
                {
                    await Task.Delay(WatchRetry, state.Time, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private async Task RunOneAsync(JobRecord job, CancellationToken ct)
    {
        await Task.Yield();
        var resumed = job.State == JobState.Running;
        var claimed = await state.UpdateJobAsync(job.Id, j => j.IsFinished ? null : j with
        {
            State = JobState.Running, Owner = owner, Attempts = j.Attempts + 1, StartedAt = j.StartedAt ?? state.Time.GetUtcNow(),
        }, ct).ConfigureAwait(false);
        if (claimed is null || claimed.IsFinished)
            return;
        var context = new JobContext(state, claimed, ct, retry);
        if (claimed.Attempts > MaxAttempts)
        {
            await FinishAsync(claimed.Id, $"interrupted {claimed.Attempts - 1} times; giving up (its steps show how far it got)").ConfigureAwait(false);
            return;
        }
        if (resumed)
            await context.LogAsync($"resumed by {owner} after its controller stopped (attempt {claimed.Attempts})").ConfigureAwait(false);
        Log.JobStarted(log, job.Id, job.Kind, job.Target);
        try
        {
            var kind = _kinds.GetValueOrDefault(job.Kind)
                ?? throw new JobRecordException(claimed, $"it knows no job kind '{job.Kind}' (known: {string.Join(", ", _kinds.Keys)})");
            var summary = await kind.RunAsync(claimed, context).ConfigureAwait(false);
            await context.LogAsync(summary).ConfigureAwait(false);
            await FinishAsync(job.Id, error: null).ConfigureAwait(false);
            Log.JobFinished(log, job.Id, job.Kind, job.Target, "succeeded", summary);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Leadership lost mid-job: left running for the next leader to resume.
        }
        catch (Exception e)
        {
            await FinishAsync(job.Id, e.Message).ConfigureAwait(false);
            Log.JobFinished(log, job.Id, job.Kind, job.Target, "failed", e.Message);
        }
    }

    private Task FinishAsync(string id, string? error) =>
        state.FinishJobAsync(id, j => j with
        {
            State = error is null ? JobState.Succeeded : JobState.Failed, Error = error, FinishedAt = state.Time.GetUtcNow(),
        }, CancellationToken.None);

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "job {Id} {Kind} {Target} started")]
        public static partial void JobStarted(ILogger logger, string id, string kind, string target);

        [LoggerMessage(2, LogLevel.Information, "job {Id} {Kind} {Target} {Outcome}: {Detail}")]
        public static partial void JobFinished(ILogger logger, string id, string kind, string target, string outcome, string detail);

        [LoggerMessage(3, LogLevel.Warning, "job runner: the store watch failed ({Reason}); polling until it is back")]
        public static partial void WatchLost(ILogger logger, string reason);
    }
}
