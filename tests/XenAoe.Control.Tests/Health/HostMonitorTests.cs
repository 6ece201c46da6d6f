using Microsoft.Extensions.Logging.Abstractions;
using XenAoe.Agents;
using XenAoe.Control.Health;
using XenAoe.Control.Jobs;
using XenAoe.Control.Model;
using XenAoe.Control.Store;

namespace XenAoe.Control.Tests.Health;

/// <summary>The heartbeat monitor over a real SQLite store and in-memory hosts that die or freeze on cue.</summary>
public sealed class HostMonitorTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("xenaoe-monitor-").FullName;
    private readonly FakeAgents _agents = new();
    private SqliteStateStore _store = null!;
    private ControllerState _state = null!;

    public async Task InitializeAsync()
    {
        _store = new SqliteStateStore(Path.Combine(_directory, "state.db"));
        _state = new ControllerState(_store);
        for (var i = 1; i <= 2; i++)
        {
            var host = _agents.AddHost($"cpu{i}", $"52:54:00:00:00:0{i}");
            await _state.PutHostAsync(new HostRecord { Name = host.Name, ApiUrl = host.Endpoint, Cpus = 8, MemoryMiB = 16384, StorageNics = [new StorageNic("eth1", host.Mac, 9000)] }, default);
        }
        var disk = _agents.AddDiskServer("disk1", 1);
        await _state.PutDiskServerAsync(new DiskServerRecord { Name = disk.Name, ApiUrl = disk.Endpoint, Shelf = disk.Shelf, FreeBytes = 1L << 40 }, default);
        Assert.True(await _state.CreateVmAsync(new VmRecord
        {
            Name = "vm1", Uuid = Guid.NewGuid(), Cpus = 1, MemoryMiB = 512, Boot = new Hypervisors.VmBoot("/boot/vmlinuz", null, ""),
            Disks = [], Host = "cpu1", Desired = VmDesiredState.Running,
        }, default));
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task A_frozen_host_is_declared_dead_after_its_dead_time_even_though_each_request_to_it_hangs_longer()
    {
        // The request timeout (10 s) is far above the dead time (2 s): the tick that declares the host dead must not wait for it.
        var options = new ControllerOptions { HeartbeatInterval = TimeSpan.FromMilliseconds(200), HeartbeatTimeout = TimeSpan.FromSeconds(10), DeadAfter = TimeSpan.FromSeconds(2) };
        var monitor = new HostMonitor(_state, options, _agents, NullLogger<HostMonitor>.Instance);
        using var leading = new CancellationTokenSource();
        var running = monitor.RunAsync(leading.Token);
        await Eventually.TrueAsync(async () => (await _state.HostAsync("cpu1", default))!.LastSeen is not null, TimeSpan.FromSeconds(5), "cpu1 heard once");
        var frozen = DateTimeOffset.UtcNow;
        _agents.Hosts.Single(h => h.Name == "cpu1").Frozen = true;

        var dead = await Eventually.ReferenceAsync(async () => await _state.HostAsync("cpu1", default) is { State: HostState.Dead } h ? h : null,
            TimeSpan.FromSeconds(15), "cpu1 declared dead");
        var after = DateTimeOffset.UtcNow - frozen;
        Assert.True(after < TimeSpan.FromSeconds(7), $"declared dead {after.TotalSeconds:0.0} s after it froze: the hanging requests held the heartbeat");
        Assert.Contains("no heartbeat", dead.StateReason);
        var cpu2 = (await _state.HostAsync("cpu2", default))!;
        Assert.True(cpu2.State == HostState.Up, $"cpu2 {cpu2.State}: {cpu2.StateReason}, last seen {cpu2.LastSeen:O}, now {DateTimeOffset.UtcNow:O}");
        var job = Assert.Single(await _state.ActiveJobsAsync(default));
        Assert.Equal((JobKinds.VmFailover.Name, "vm1"), (job.Kind, job.Target));

        await leading.CancelAsync();
        await running.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_host_that_answers_again_has_its_stale_vms_killed_and_is_marked_up()
    {
        var options = new ControllerOptions { HeartbeatInterval = TimeSpan.FromMilliseconds(100), DeadAfter = TimeSpan.FromMilliseconds(500) };
        var monitor = new HostMonitor(_state, options, _agents, NullLogger<HostMonitor>.Instance);
        var cpu1 = _agents.Hosts.Single(h => h.Name == "cpu1");
        cpu1.Run(new Agents.Host.VmDefinition("vm1", Guid.NewGuid(), 1, 512, new Hypervisors.VmBoot("/boot/vmlinuz", null, ""), [], [], null));
        cpu1.Dead = true;
        using var leading = new CancellationTokenSource();
        var running = monitor.RunAsync(leading.Token);
        await Eventually.TrueAsync(async () => (await _state.HostAsync("cpu1", default))!.State == HostState.Dead, TimeSpan.FromSeconds(10), "cpu1 declared dead");
        // The failover moved vm1 away meanwhile.
        await _state.UpdateVmAsync("vm1", v => v with { Host = "cpu2" }, default);
        cpu1.Dead = false;
        await Eventually.TrueAsync(async () => (await _state.HostAsync("cpu1", default))!.State == HostState.Up, TimeSpan.FromSeconds(10), "cpu1 up again");
        Assert.Null(cpu1.Role("vm1"));

        await leading.CancelAsync();
        await running.WaitAsync(TimeSpan.FromSeconds(10));
    }
}
