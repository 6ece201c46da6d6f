using Microsoft.Extensions.Logging.Abstractions;
using XenAoe.Control.Jobs;
using XenAoe.Control.Model;
using XenAoe.Control.Store;

namespace XenAoe.Control.Tests.Jobs;

/// <summary>The runner finds work through the store's watch, and reads only unfinished jobs however long the history.</summary>
public sealed class JobRunnerTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("xenaoe-runner-").FullName;
    private SqliteStateStore _store = null!;
    private ControllerState _state = null!;

    public Task InitializeAsync()
    {
        _store = new SqliteStateStore(Path.Combine(_directory, "state.db"));
        _state = new ControllerState(_store);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task A_job_submitted_while_the_runner_waits_starts_at_once_without_waiting_for_its_safety_poll()
    {
        var ran = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var runner = new JobRunner(_state, [new RecordingJob(ran)], "controller1", NullLogger<JobRunner>.Instance, safetyPoll: TimeSpan.FromHours(1));
        using var leading = new CancellationTokenSource();
        var running = runner.RunAsync(leading.Token);
        await Task.Delay(300);
        var job = await _state.SubmitJobAsync(JobKinds.VmStart, "vm1", new NoParameters(), CancellationToken.None);
        Assert.Equal(job.Id, await ran.Task.WaitAsync(TimeSpan.FromSeconds(5)));
        var finished = await Eventually.ReferenceAsync(async () =>
            await _state.JobAsync(job.Id, CancellationToken.None) is { IsFinished: true } done ? done : null, TimeSpan.FromSeconds(5), "the job finished");
        Assert.Equal(JobState.Succeeded, finished.State);
        Assert.Empty(await _state.ActiveJobsAsync(CancellationToken.None));
        await leading.CancelAsync();
        await running.WaitAsync(TimeSpan.FromSeconds(5));
    }

    /// <summary>A job that only reports its id.</summary>
    private sealed class RecordingJob(TaskCompletionSource<string> ran) : IJob
    {
        public string Kind => JobKinds.VmStart.Name;

        public Task<string> RunAsync(JobRecord record, JobContext job)
        {
            ran.TrySetResult(record.Id);
            return Task.FromResult("ran");
        }
    }
}
