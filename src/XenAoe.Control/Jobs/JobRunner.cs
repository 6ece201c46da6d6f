using Microsoft.Extensions.Logging;
using XenAoe.Control.Model;

namespace XenAoe.Control.Jobs;

/// <summary>
/// Runs the jobs in the store, on the leading controller only: pending ones, and running ones a previous leader left behind
/// (resumed from their first unfinished step). One job per target at a time (submission refuses a second); different
/// targets run in parallel. A job interrupted more than <see cref="MaxAttempts"/> times is failed, not retried forever.
/// </summary>
public sealed partial class JobRunner(ControllerState state, IReadOnlyList<IJob> kinds, string owner, ILogger<JobRunner> log, StepRetry? retry = null)
{
    private readonly Dictionary<string, IJob> _kinds = kinds.ToDictionary(k => k.Kind, StringComparer.Ordinal);
    public const int MaxAttempts = 3;
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(100);
    private readonly Dictionary<string, Task> _running = [];

    /// <summary>Runs until <paramref name="ct"/> is cancelled (leadership lost or shutdown); jobs in flight are left for the next leader.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                foreach (var done in _running.Where(r => r.Value.IsCompleted).Select(r => r.Key).ToList())
                    _running.Remove(done);
                foreach (var job in await state.JobsAsync(ct).ConfigureAwait(false))
                {
                    if (job.IsFinished || _running.ContainsKey(job.Id))
                        continue;
                    _running[job.Id] = RunOneAsync(job, ct);
                }
                await Task.Delay(Poll, state.Time, ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Leadership lost or stopping: the jobs' records say where they are.
        }
        await Task.WhenAll(_running.Values).ConfigureAwait(false);
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
        state.UpdateJobAsync(id, j => j with
        {
            State = error is null ? JobState.Succeeded : JobState.Failed, Error = error, FinishedAt = state.Time.GetUtcNow(),
        }, CancellationToken.None);

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "job {Id} {Kind} {Target} started")]
        public static partial void JobStarted(ILogger logger, string id, string kind, string target);

        [LoggerMessage(2, LogLevel.Information, "job {Id} {Kind} {Target} {Outcome}: {Detail}")]
        public static partial void JobFinished(ILogger logger, string id, string kind, string target, string outcome, string detail);
    }
}
