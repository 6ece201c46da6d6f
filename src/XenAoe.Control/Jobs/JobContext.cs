using XenAoe.Control.Model;

namespace XenAoe.Control.Jobs;

/// <summary>
/// What a running job sees: its parameters (including decisions it remembered in earlier steps), its steps, and a log.
/// Every step's start and end is persisted before the next begins, so after a controller dies the next leader skips the
/// steps that finished and runs the interrupted one again (steps are written to be safe to repeat).
/// </summary>
public sealed class JobContext(ControllerState state, JobRecord job, CancellationToken ct)
{
    public ControllerState State { get; } = state;

    public CancellationToken Cancellation { get; } = ct;

    public string Id => job.Id;

    public string Target => job.Target;

    public string? Parameter(string name) => job.Parameters.GetValueOrDefault(name);

    public string RequiredParameter(string name) =>
        job.Parameters.GetValueOrDefault(name) ?? throw new ControlException($"job {job.Id} ({job.Kind}) has no parameter '{name}'");

    /// <summary>Persists a decision (a chosen host, allocated slots) so a resumed job makes the same one.</summary>
    public async Task RememberAsync(string name, string value)
    {
        job = await State.UpdateJobAsync(job.Id, j => j with { Parameters = new(j.Parameters) { [name] = value } }, Cancellation).ConfigureAwait(false) ?? job;
    }

    public async Task LogAsync(string text)
    {
        var line = new JobLogLine(State.Time.GetUtcNow(), text);
        job = await State.UpdateJobAsync(job.Id, j => j with { Log = [.. j.Log, line] }, Cancellation).ConfigureAwait(false) ?? job;
    }

    /// <summary>Runs a step unless an earlier attempt finished it; its detail (returned by <paramref name="body"/>) is shown in the job.</summary>
    public async Task StepAsync(string name, Func<Task<string?>> body)
    {
        if (job.Steps.Any(s => s.Name == name && s.State == JobState.Succeeded))
            return;
        var started = State.Time.GetUtcNow();
        await SetStepAsync(new JobStep(name, JobState.Running, started)).ConfigureAwait(false);
        try
        {
            var detail = await body().ConfigureAwait(false);
            await SetStepAsync(new JobStep(name, JobState.Succeeded, started, State.Time.GetUtcNow(), detail)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            await SetStepAsync(new JobStep(name, JobState.Failed, started, State.Time.GetUtcNow(), e.Message)).ConfigureAwait(false);
            throw;
        }
    }

    public Task StepAsync(string name, Func<Task> body) => StepAsync(name, async () =>
    {
        await body().ConfigureAwait(false);
        return null;
    });

    private async Task SetStepAsync(JobStep step)
    {
        job = await State.UpdateJobAsync(job.Id, j =>
        {
            var steps = j.Steps.ToList();
            var index = steps.FindIndex(s => s.Name == step.Name);
            if (index < 0)
                steps.Add(step);
            else
                steps[index] = step;
            return j with { Steps = steps };
        }, CancellationToken.None).ConfigureAwait(false) ?? job;
    }
}
