using System.Globalization;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using XenAoe.Control;
using XenAoe.Control.Jobs;
using XenAoe.Control.Model;
using XenAoe.Control.Store;

namespace XenAoe.Benchmarks;

/// <summary>
/// What the job runner's loop costs as the history grows: a SQLite store holding <see cref="History"/> finished jobs (each with
/// three steps and a log line, as a VM start leaves them) and 10 unfinished ones. <see cref="ActiveJobs"/> is one pass of the
/// runner now (the targets' markers, then their jobs); <see cref="AllJobs"/> is the anchor: the pass the runner made every
/// 100 ms before, reading every job in the store.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(RunStrategy.Monitoring, warmupCount: 1, iterationCount: 5, invocationCount: 1)]
public class JobHistoryBenchmarks
{
    private string _directory = "";
    private SqliteStateStore _store = null!;
    private ControllerState _state = null!;

    [Params(0, 1_000, 100_000)]
    public int History { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _directory = Directory.CreateTempSubdirectory("xenaoe-job-history-").FullName;
        _store = new SqliteStateStore(Path.Combine(_directory, "state.db"));
        _state = new ControllerState(_store);
        SeedAsync(_store, History).GetAwaiter().GetResult();
        for (var i = 0; i < 10; i++)
            _state.SubmitJobAsync(JobKinds.VmStart, $"vm{i}", new NoParameters(), CancellationToken.None).GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _store.DisposeAsync().AsTask().GetAwaiter().GetResult();
        Directory.Delete(_directory, recursive: true);
    }

    [Benchmark]
    public async Task<int> ActiveJobs() => (await _state.ActiveJobsAsync(CancellationToken.None)).Count;

    [Benchmark(Baseline = true)]
    public async Task<int> AllJobs() => (await _state.JobsAsync(CancellationToken.None)).Count(j => !j.IsFinished);

    /// <summary><paramref name="count"/> finished jobs written as a controller leaves them, in transactions of 1,000.</summary>
    internal static async Task SeedAsync(IStateStore store, int count)
    {
        var at = DateTimeOffset.UtcNow.AddDays(-1);
        for (var first = 0; first < count; first += 1000)
        {
            var batch = Enumerable.Range(first, Math.Min(1000, count - first)).Select(i =>
            {
                var job = new JobRecord
                {
                    Id = $"h{i.ToString("D7", CultureInfo.InvariantCulture)}", Kind = JobKinds.VmStart.Name, Target = $"vm{i % 500}",
                    Format = JobRecord.CurrentFormat, State = JobState.Succeeded, CreatedAt = at, StartedAt = at, FinishedAt = at,
                    Steps = [new JobStep("place", JobState.Succeeded, at, at, "cpu1"), new JobStep("start", JobState.Succeeded, at, at, "running on cpu1"),
                        new JobStep("record", JobState.Succeeded, at, at)],
                    Log = [new JobLogLine(at, "vm started on cpu1")],
                };
                return StoreOperation.Put($"jobs/{job.Id}", JsonSerializer.SerializeToUtf8Bytes(job, ControlJsonContext.Default.JobRecord));
            }).ToList();
            await store.TransactAsync(batch).ConfigureAwait(false);
        }
    }
}

/// <summary>The first pruning of a history of 100,000 finished jobs down to the default 1,000 (one pass; a fresh store each time).</summary>
[SimpleJob(RunStrategy.Monitoring, warmupCount: 0, iterationCount: 3, invocationCount: 1)]
public class JobPruningBenchmarks
{
    private string _directory = "";
    private SqliteStateStore _store = null!;

    [IterationSetup]
    public void Setup()
    {
        _directory = Directory.CreateTempSubdirectory("xenaoe-job-pruning-").FullName;
        _store = new SqliteStateStore(Path.Combine(_directory, "state.db"));
        JobHistoryBenchmarks.SeedAsync(_store, 100_000).GetAwaiter().GetResult();
    }

    [IterationCleanup]
    public void Cleanup()
    {
        _store.DisposeAsync().AsTask().GetAwaiter().GetResult();
        Directory.Delete(_directory, recursive: true);
    }

    [Benchmark]
    public Task<int> Prune100000To1000() =>
        new ControllerState(_store).PruneJobsAsync(new ControllerOptions().KeepJobs, DateTimeOffset.UtcNow.AddDays(-30), CancellationToken.None);
}
