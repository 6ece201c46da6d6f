using XenAoe.Control.Jobs;
using XenAoe.Control.Model;
using XenAoe.Control.Store;

namespace XenAoe.Control.Tests;

/// <summary>The typed inventory and jobs over a real SQLite store.</summary>
public sealed partial class ControllerStateTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("xenaoe-state-").FullName;
    private IStateStore _store = null!;
    private ControllerState _state = null!;

    public Task InitializeAsync()
    {
        _store = new SqliteStateStore(Path.Combine(_directory, "state.db"));
        _state = new ControllerState(_store);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Of_many_submitters_racing_for_one_vm_exactly_one_gets_a_job_and_the_others_are_told_it_is_busy()
    {
        var attempts = await Task.WhenAll(Enumerable.Range(0, 8).Select(async i =>
        {
            await Task.Yield();
            try
            {
                return (Job: await _state.SubmitJobAsync(i % 2 == 0 ? JobKinds.VmStart : JobKinds.VmReboot, "vm1", new NoParameters(), CancellationToken.None), Error: (string?)null);
            }
            catch (ControlException e)
            {
                return (Job: (JobRecord?)null, Error: e.Message);
            }
        }));
        var winner = Assert.Single(attempts, a => a.Job is not null).Job!;
        Assert.All(attempts.Where(a => a.Job is null), a => Assert.Contains($"busy with job {winner.Id}", a.Error));
        Assert.Single(await _state.JobsAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Once_a_job_is_finished_its_target_takes_a_new_one_and_ids_keep_their_order()
    {
        var first = await _state.SubmitJobAsync(JobKinds.VmStart, "vm1", new NoParameters(), CancellationToken.None);
        await _state.UpdateJobAsync(first.Id, j => j with { State = JobState.Succeeded }, CancellationToken.None);
        var second = await _state.SubmitJobAsync(JobKinds.VmStop, "vm1", new StopVmParameters(), CancellationToken.None);
        var other = await _state.SubmitJobAsync(JobKinds.HostEvacuate, "vm1", new NoParameters(), CancellationToken.None); // a host named like the VM is another target
        Assert.Equal(["000001", "000002", "000003"], (await _state.JobsAsync(CancellationToken.None)).Select(j => j.Id));
        Assert.Equal("vm-stop", second.Kind);
        Assert.Equal("host-evacuate", other.Kind);
    }

    [Fact]
    public async Task Only_unfinished_jobs_are_active_and_finishing_one_frees_its_target_in_the_same_write()
    {
        var done = await _state.SubmitJobAsync(JobKinds.VmStart, "vm1", new NoParameters(), CancellationToken.None);
        var running = await _state.SubmitJobAsync(JobKinds.VmStart, "vm2", new NoParameters(), CancellationToken.None);
        await _state.FinishJobAsync(done.Id, j => j with { State = JobState.Succeeded }, CancellationToken.None);
        Assert.Equal([running.Id], (await _state.ActiveJobsAsync(CancellationToken.None)).Select(j => j.Id));
        Assert.Null(await _store.GetAsync("active/vm/vm1"));
        Assert.Equal(running.Id, (await _store.GetAsync("active/vm/vm2"))!.ValueText);
        await Assert.ThrowsAsync<ArgumentException>(() => _state.FinishJobAsync(running.Id, j => j, CancellationToken.None));
    }

    [Fact]
    public async Task A_marker_left_on_a_finished_job_by_an_older_controller_is_removed_when_the_active_jobs_are_read()
    {
        var job = await _state.SubmitJobAsync(JobKinds.VmStop, "vm1", new StopVmParameters(), CancellationToken.None);
        await _state.UpdateJobAsync(job.Id, j => j with { State = JobState.Failed }, CancellationToken.None);
        Assert.Empty(await _state.ActiveJobsAsync(CancellationToken.None));
        Assert.Null(await _store.GetAsync("active/vm/vm1"));
    }

    [Fact]
    public async Task Pruning_deletes_finished_jobs_past_the_count_or_the_age_and_never_an_unfinished_one()
    {
        var ids = new List<string>();
        for (var i = 0; i < 6; i++)
        {
            var job = await _state.SubmitJobAsync(JobKinds.VmStart, $"vm{i}", new NoParameters(), CancellationToken.None);
            ids.Add(job.Id);
            if (i != 1)
                await _state.FinishJobAsync(job.Id, j => j with { State = JobState.Succeeded, FinishedAt = DateTimeOffset.UtcNow.AddDays(i == 4 ? -40 : 0) }, CancellationToken.None);
        }
        // Finished: 0, 2, 3, 4 (40 days old), 5; keep the newest 3 and none older than 30 days.
        Assert.Equal(3, await _state.PruneJobsAsync(keep: 3, DateTimeOffset.UtcNow.AddDays(-30), CancellationToken.None));
        Assert.Equal([ids[1], ids[3], ids[5]], (await _state.JobsAsync(CancellationToken.None)).Select(j => j.Id));
        Assert.Equal(0, await _state.PruneJobsAsync(keep: 3, DateTimeOffset.UtcNow.AddDays(-30), CancellationToken.None));
    }

    [Fact]
    public async Task An_update_applies_to_the_latest_version_when_another_writer_changed_the_record_in_between()
    {
        await _state.PutHostAsync(new HostRecord { Name = "cpu1", ApiUrl = "http://10.0.0.1:7300" }, CancellationToken.None);
        var interleaved = false;
        await _state.UpdateHostAsync("cpu1", h =>
        {
            if (!interleaved)
            {
                interleaved = true;
                _state.UpdateHostAsync("cpu1", x => x with { Cpus = 8 }, CancellationToken.None).GetAwaiter().GetResult();
            }
            return h with { MemoryMiB = 4096 };
        }, CancellationToken.None);
        var host = await _state.HostAsync("cpu1", CancellationToken.None);
        Assert.Equal(8, host!.Cpus);
        Assert.Equal(4096, host.MemoryMiB);
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}
