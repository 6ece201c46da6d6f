using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using XenAoe.Control.Model;

namespace XenAoe.Control.Jobs;

/// <summary>
/// What a running job sees: its target, its steps and a log. Every step's start and end is persisted before the next begins,
/// with its typed result, so after a controller dies the next leader skips the steps that finished (reading their results
/// back) and runs the interrupted one again: steps are written to be safe to repeat.
/// </summary>
/// <remarks>
/// A step that fails transiently (a daemon that does not answer, a timeout, a 5xx) is run again, <see cref="StepRetry.Attempts"/>
/// times in all with growing pauses: steps are written to be safe to repeat, and a daemon restarting must not fail a failover.
/// A refusal (4xx) fails the step at once.
/// </remarks>
public sealed class JobContext(ControllerState state, JobRecord job, CancellationToken ct, StepRetry? retry = null)
{
    private readonly StepRetry _retry = retry ?? StepRetry.Default;

    public ControllerState State { get; } = state;

    public CancellationToken Cancellation { get; } = ct;

    public string Id => job.Id;

    public string Target => job.Target;

    public async Task LogAsync(string text)
    {
        var line = new JobLogLine(State.Time.GetUtcNow(), text);
        job = await State.UpdateJobAsync(job.Id, j => j with { Log = [.. j.Log, line] }, Cancellation).ConfigureAwait(false) ?? job;
    }

    /// <summary>
    /// Runs a step unless an earlier attempt finished it, and returns its result: the one <paramref name="body"/> made, or the one
    /// recorded then. Its <see cref="IStepResult.Summary"/> is the step's detail.
    /// </summary>
    public async Task<T> StepAsync<T>(string name, JsonTypeInfo<T> type, Func<Task<T>> body) where T : IStepResult
    {
        if (Finished(name) is { } done)
        {
            try
            {
                return done.Result is { } result ? result.Deserialize(type) ?? throw new JsonException("null") : throw new JsonException("no result recorded");
            }
            catch (JsonException e)
            {
                throw new JobRecordException(job, $"the result of its finished step '{name}' cannot be read ({e.Message})");
            }
        }
        return await RunStepAsync(name, async () =>
        {
            var result = await body().ConfigureAwait(false);
            return (result, result.Summary, JsonSerializer.SerializeToElement(result, type));
        }).ConfigureAwait(false);
    }

    /// <summary>Runs a step without a result unless an earlier attempt finished it; what <paramref name="body"/> returns is its detail.</summary>
    public async Task StepAsync(string name, Func<Task<string?>> body)
    {
        if (Finished(name) is not null)
            return;
        await RunStepAsync(name, async () => (true, await body().ConfigureAwait(false), (JsonElement?)null)).ConfigureAwait(false);
    }

    public Task StepAsync(string name, Func<Task> body) => StepAsync(name, async () =>
    {
        await body().ConfigureAwait(false);
        return null;
    });

    /// <summary>Whether an attempt of this job (this one or an interrupted earlier one) began the step.</summary>
    public bool Began(string name) => job.Steps.Any(s => s.Name == name);

    private JobStep? Finished(string name) => job.Steps.FirstOrDefault(s => s.Name == name && s.State == JobState.Succeeded);

    private async Task<T> RunStepAsync<T>(string name, Func<Task<(T Value, string? Detail, JsonElement? Result)>> body)
    {
        var started = State.Time.GetUtcNow();
        await SetStepAsync(new JobStep(name, JobState.Running, started)).ConfigureAwait(false);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var (value, detail, result) = await body().ConfigureAwait(false);
                await SetStepAsync(new JobStep(name, JobState.Succeeded, started, State.Time.GetUtcNow(), detail, result)).ConfigureAwait(false);
                return value;
            }
            catch (Exception e) when (attempt < _retry.Attempts && StepRetry.IsTransient(e) && !Cancellation.IsCancellationRequested)
            {
                var pause = _retry.FirstPause * (1 << (attempt - 1));
                await LogAsync($"step {name} failed ({e.Message}); trying again in {pause.TotalSeconds:0.#} s (attempt {attempt + 1} of {_retry.Attempts})").ConfigureAwait(false);
                await Task.Delay(pause, State.Time, Cancellation).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !Cancellation.IsCancellationRequested)
            {
                await SetStepAsync(new JobStep(name, JobState.Failed, started, State.Time.GetUtcNow(), e.Message)).ConfigureAwait(false);
                throw;
            }
        }
    }

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

/// <summary>How often a step that failed transiently is tried in all, and the first pause (doubled each time).</summary>
public sealed record StepRetry(int Attempts, TimeSpan FirstPause)
{
    public static readonly StepRetry Default = new(4, TimeSpan.FromSeconds(1));

    /// <summary>Worth another try: the daemon did not answer, or failed on its side; not a refusal.</summary>
    public static bool IsTransient(Exception e) => e switch
    {
        HttpRequestException { StatusCode: null } or TimeoutException => true,
        XenAoe.Agents.Host.HostException h => h.Status >= 500,
        _ => false,
    };
}

/// <summary>One kind of job's steps. Implementations read their parameters from the record through their <see cref="JobKind{T}"/>.</summary>
public interface IJob
{
    string Kind { get; }

    /// <summary>Runs the job's steps; returns a one-line summary for its log, or throws with the reason it failed.</summary>
    Task<string> RunAsync(JobRecord record, JobContext job);
}

/// <summary>A job kind whose parameters are <typeparamref name="TParameters"/>.</summary>
public abstract class Job<TParameters>(JobKind<TParameters> kind) : IJob
{
    public string Kind => kind.Name;

    public Task<string> RunAsync(JobRecord record, JobContext job) => RunAsync(kind.Read(record), job);

    protected abstract Task<string> RunAsync(TParameters parameters, JobContext job);
}
