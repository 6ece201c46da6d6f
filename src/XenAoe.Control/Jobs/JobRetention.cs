using Microsoft.Extensions.Logging;

namespace XenAoe.Control.Jobs;

/// <summary>
/// Keeps the job history bounded, on the leading controller: every <see cref="Interval"/> it deletes the finished jobs beyond
/// the newest <see cref="ControllerOptions.KeepJobs"/> and those finished longer than <see cref="ControllerOptions.KeepJobsFor"/>
/// ago. Unfinished jobs are never pruned.
/// </summary>
public sealed partial class JobRetention(ControllerState state, ControllerOptions options, ILogger<JobRetention> log)
{
    public static readonly TimeSpan Interval = TimeSpan.FromMinutes(10);

    public async Task RunAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(Interval, state.Time);
        try
        {
            do
                await PruneAsync(ct).ConfigureAwait(false);
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Leadership lost or stopping.
        }
    }

    /// <summary>One pass; returns how many jobs were deleted.</summary>
    public async Task<int> PruneAsync(CancellationToken ct)
    {
        var deleted = await state.PruneJobsAsync(options.KeepJobs, state.Time.GetUtcNow() - options.KeepJobsFor, ct).ConfigureAwait(false);
        if (deleted > 0)
            Log.Pruned(log, deleted, options.KeepJobs, options.KeepJobsFor.TotalDays);
        return deleted;
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "pruned {Count} finished jobs (keeping the newest {Keep}, none older than {Days} days)")]
        public static partial void Pruned(ILogger logger, int count, int keep, double days);
    }
}
