using Microsoft.Extensions.Logging.Abstractions;
using XenAoe.Agents;
using XenAoe.Control.Jobs;
using XenAoe.Control.Model;
using XenAoe.Control.Store;

namespace XenAoe.Control.Tests.Jobs;

/// <summary>
/// A controller over a real SQLite store and in-memory agents (three CPU servers, three disk servers), that runs one job with
/// the real runner and can be "restarted" mid-job: <see cref="StopController"/>, called from an agent fault, cancels the running
/// controller as a lost leadership does, and <see cref="RunAsync"/> starts a new one (new state, new runner) on the same store.
/// </summary>
public sealed class JobWorld : IAsyncDisposable
{
    public const string Vm = "vm1";
    private static readonly StepRetry FastRetry = new(4, TimeSpan.FromMilliseconds(1));
    private readonly string _directory = Directory.CreateTempSubdirectory("xenaoe-jobs-").FullName;
    private readonly SqliteStateStore _store;
    private CancellationTokenSource _controller = new();

    private JobWorld()
    {
        _store = new SqliteStateStore(Path.Combine(_directory, "state.db"));
        State = new ControllerState(_store);
    }

    public FakeAgents Agents { get; } = new();

    public ControllerState State { get; private set; }

    /// <summary>How many times the controller was stopped mid-job.</summary>
    public int Restarts { get; private set; }

    public static async Task<JobWorld> CreateAsync()
    {
        var world = new JobWorld();
        for (var i = 1; i <= 3; i++)
        {
            var host = world.Agents.AddHost($"cpu{i}", $"52:54:00:00:00:0{i}");
            await world.State.PutHostAsync(new HostRecord
            {
                Name = host.Name, ApiUrl = host.Endpoint, Cpus = 8, MemoryMiB = 16384, StorageNics = [new StorageNic("eth1", host.Mac, 9000)], LastSeen = DateTimeOffset.UtcNow,
            }, default);
            var disk = world.Agents.AddDiskServer($"disk{i}", (ushort)i);
            await world.State.PutDiskServerAsync(new DiskServerRecord
            {
                Name = disk.Name, ApiUrl = disk.Endpoint, Shelf = disk.Shelf, FreeBytes = 1L << 40, Labels = new() { ["switch"] = $"s{i}" },
            }, default);
        }
        return world;
    }

    /// <summary>vm1 recorded and running on <paramref name="host"/> (or recorded stopped), its legs on disk1 and disk2.</summary>
    public async Task<VmRecord> AddVmAsync(string? host)
    {
        var legs = new List<LegRecord>();
        foreach (var server in Agents.DiskServers.Where(d => d.Name is "disk1" or "disk2").OrderBy(d => d.Name))
        {
            var volume = await server.CreateAsync(new Storage.VolumeSpec { Name = $"{Vm}-root", Shelf = server.Shelf, Slot = 0, SizeBytes = 1L << 30 });
            legs.Add(new LegRecord(server.Name, volume.Name, volume.Address));
        }
        var vm = new VmRecord
        {
            Name = Vm, Uuid = Guid.NewGuid(), Cpus = 1, MemoryMiB = 512, Boot = new Hypervisors.VmBoot("/boot/vmlinuz", null, "console=ttyS0"),
            Disks = [new VmDiskRecord("root", 1L << 30, legs)], Host = host, Desired = host is null ? VmDesiredState.Stopped : VmDesiredState.Running,
        };
        Assert.True(await State.CreateVmAsync(vm, default));
        if (host is not null)
            Agents.Hosts.Single(h => h.Name == host).Run(JobServices.Definition(vm));
        Agents.Calls.Clear();
        return vm;
    }

    /// <summary>Called from a fault: the running controller stops here, as if its leadership was lost.</summary>
    public void StopController()
    {
        Restarts++;
        _controller.Cancel();
        _controller.Token.ThrowIfCancellationRequested();
    }

    /// <summary>Runs controllers, a new one each time the last was stopped, until the job finishes.</summary>
    public async Task<JobRecord> RunAsync(string jobId)
    {
        for (var controller = 1; controller <= 20; controller++)
        {
            _controller = new CancellationTokenSource();
            State = new ControllerState(_store);
            var jobs = new JobServices(State, new Placement(State), Agents).Jobs();
            var runner = new JobRunner(State, jobs, $"controller{controller}", NullLogger<JobRunner>.Instance, FastRetry);
            var running = runner.RunAsync(_controller.Token);
            var job = await Eventually.ReferenceAsync(async () =>
                _controller.IsCancellationRequested ? new JobRecord { Id = "", Kind = "", Target = "" }
                : await State.JobAsync(jobId, default) is { IsFinished: true } done ? done : null,
                TimeSpan.FromSeconds(30), $"job {jobId} to finish or its controller to stop");
            await _controller.CancelAsync();
            await running.WaitAsync(TimeSpan.FromSeconds(30));
            if (job.Id.Length > 0)
                return job;
        }
        throw new InvalidOperationException($"job {jobId} did not finish after 20 controllers");
    }

    public async ValueTask DisposeAsync()
    {
        _controller.Dispose();
        await _store.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}
