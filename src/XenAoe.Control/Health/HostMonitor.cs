using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using XenAoe.Agents.Disk;
using XenAoe.Aoe;
using XenAoe.Agents.Host;
using XenAoe.Control.Jobs;
using XenAoe.Control.Model;
using XenAoe.Storage;

namespace XenAoe.Control.Health;

/// <summary>
/// The leader's heartbeat of the cluster: every <see cref="ControllerOptions.HeartbeatInterval"/> it asks each CPU server and
/// disk server for its status. A CPU server silent for <see cref="ControllerOptions.DeadAfter"/> is declared dead and a
/// failover job is submitted for each VM it ran (the job fences it at the storage before restarting the VM elsewhere). A dead
/// host that answers again has its stale copies of those VMs killed before it is marked up: they are fenced and cannot
/// write, but they must not linger.
/// </summary>
/// <remarks>
/// Each server's request runs on its own: one that hangs until <see cref="ControllerOptions.HeartbeatTimeout"/> (a frozen
/// host, a disk server cut off) delays neither the others' heartbeats nor the tick that declares a silent host dead, so a
/// host is declared dead within one interval of its dead time, whatever the others do.
/// </remarks>
public sealed partial class HostMonitor(ControllerState state, ControllerOptions options, IAgents agents, ILogger<HostMonitor> log)
{
    private readonly ConcurrentDictionary<string, DateTimeOffset> _lastAnswer = [];
    private readonly Dictionary<string, Task> _asking = [];

    public async Task RunAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(options.HeartbeatInterval, state.Time);
        try
        {
            do
            {
                await CheckHostsAsync(ct).ConfigureAwait(false);
                StartAsking("disk server", await state.DiskServersAsync(ct).ConfigureAwait(false), d => d.Name, CheckDiskServerAsync, ct);
            }
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Leadership lost or stopping.
        }
        await Task.WhenAll(_asking.Values).ConfigureAwait(false);
    }

    private async Task CheckHostsAsync(CancellationToken ct)
    {
        var now = state.Time.GetUtcNow();
        var hosts = await state.HostsAsync(ct).ConfigureAwait(false);
        StartAsking("host", hosts, h => h.Name, AskHostAsync, ct);
        foreach (var host in hosts.Where(h => h.State != HostState.Dead))
        {
            // A leader that just took over has not heard anyone yet: it counts from its own start, not from the record.
            var since = _lastAnswer.GetOrAdd(host.Name, now);
            if (now - since >= options.DeadAfter)
                await DeclareDeadAsync(host, now - since, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Starts a request to each server that has none in flight; a server still answering the last one is left to it.</summary>
    private void StartAsking<T>(string kind, IReadOnlyList<T> servers, Func<T, string> name, Func<T, CancellationToken, Task> ask, CancellationToken ct)
    {
        foreach (var server in servers)
        {
            var key = $"{kind} {name(server)}";
            if (_asking.TryGetValue(key, out var inFlight) && !inFlight.IsCompleted)
                continue;
            _asking[key] = Task.Run(async () =>
            {
                try
                {
                    await ask(server, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    // Leadership lost or stopping.
                }
                catch (Exception e)
                {
                    // One server's check failing (the store busy, a returning host refusing a kill) must not stop the heartbeats.
                    Log.CheckFailed(log, kind, name(server), e.Message);
                }
            }, CancellationToken.None);
        }
    }

    private async Task AskHostAsync(HostRecord host, CancellationToken ct)
    {
        if (await AskAsync(host, ct).ConfigureAwait(false) is not { } info)
            return;
        _lastAnswer[host.Name] = state.Time.GetUtcNow();
        // The record as it is now: the tick may have declared the host dead while the request was out.
        if (await state.HostAsync(host.Name, ct).ConfigureAwait(false) is { } current)
            await OnAnswerAsync(current, info, ct).ConfigureAwait(false);
    }

    private async Task<HostInfo?> AskAsync(HostRecord host, CancellationToken ct)
    {
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bounded.CancelAfter(options.HeartbeatTimeout);
        try
        {
            return await agents.Host(host.ApiUrl).InfoAsync(bounded.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or TimeoutException or HostException or IOException
            || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            return null;
        }
    }

    private async Task OnAnswerAsync(HostRecord host, HostInfo info, CancellationToken ct)
    {
        if (host.State == HostState.Dead)
            await KillStaleVmsAsync(host, ct).ConfigureAwait(false);
        await state.UpdateHostAsync(host.Name, h => h with
        {
            State = h.State == HostState.Dead ? HostState.Up : h.State,
            StateReason = h.State == HostState.Dead ? "answered again; its stale VMs were killed" : h.StateReason,
            LastSeen = state.Time.GetUtcNow(),
            Cpus = info.Cpus,
            MemoryMiB = info.MemoryMiB,
            StorageNics = info.StorageNics,
        }, ct).ConfigureAwait(false);
    }

    private async Task DeclareDeadAsync(HostRecord host, TimeSpan silent, CancellationToken ct)
    {
        var reason = $"no heartbeat for {silent.TotalSeconds:0.0} s";
        var declared = false;
        await state.UpdateHostAsync(host.Name, h =>
        {
            // An answer that arrived meanwhile (its record update won the race) keeps the host up.
            if (h.State == HostState.Dead || state.Time.GetUtcNow() - _lastAnswer.GetValueOrDefault(host.Name) < options.DeadAfter)
                return null;
            declared = true;
            return h with { State = HostState.Dead, StateReason = reason };
        }, ct).ConfigureAwait(false);
        if (!declared)
            return;
        Log.HostDead(log, host.Name, reason);
        foreach (var vm in (await state.VmsAsync(ct).ConfigureAwait(false)).Where(v => v.Host == host.Name && v.Desired == VmDesiredState.Running))
        {
            try
            {
                var job = await state.SubmitJobAsync(JobKinds.VmFailover, vm.Name, new FailoverVmParameters(host.Name), ct).ConfigureAwait(false);
                Log.FailoverSubmitted(log, vm.Name, host.Name, job.Id);
            }
            catch (ControlException e)
            {
                // The VM is busy with another job. A live migration whose source this was restarts the VM itself, from its
                // disk after the fence; another job fails on its own, and the operator restarts the VM with `xenaoe vm
                // failover` (the log says so).
                Log.FailoverDeferred(log, vm.Name, e.Message);
            }
        }
    }

    private async Task KillStaleVmsAsync(HostRecord host, CancellationToken ct)
    {
        var client = agents.Host(host.ApiUrl);
        var records = (await state.VmsAsync(ct).ConfigureAwait(false)).ToDictionary(v => v.Name);
        foreach (var vm in await client.ListAsync(ct).ConfigureAwait(false))
        {
            if (records.TryGetValue(vm.Name, out var record) && record.Host == host.Name)
                continue;
            await client.KillAsync(vm.Name, ct).ConfigureAwait(false);
            Log.StaleVmKilled(log, vm.Name, host.Name);
        }
    }

    private async Task CheckDiskServerAsync(DiskServerRecord disk, CancellationToken ct)
    {
        var client = agents.Disk(disk.ApiUrl);
        PoolSpace? space;
        try
        {
            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
            bounded.CancelAfter(options.HeartbeatTimeout);
            space = await client.SpaceAsync(bounded.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or TimeoutException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            space = null;
        }
        var reachable = space is not null;
        if (reachable && disk.PendingFences.Count > 0)
            await PayFencesAsync(disk, client, ct).ConfigureAwait(false);
        if (reachable != disk.Reachable)
            Log.DiskServerChanged(log, disk.Name, reachable ? "answers again: its legs resync" : "does not answer: mirrors run degraded");
        if (reachable != disk.Reachable || (space is not null && (space.FreeBytes != disk.FreeBytes || space.TotalBytes != disk.TotalBytes)))
        {
            // A compare-and-swap, not a put: a drain marking the server meanwhile must not be overwritten.
            await state.UpdateDiskServerAsync(disk.Name, d => d with
            {
                Reachable = reachable, FreeBytes = space?.FreeBytes ?? d.FreeBytes, TotalBytes = space?.TotalBytes ?? d.TotalBytes,
            }, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Sets every owed reservation to its VM's current host (nobody when it runs nowhere), then forgets the fences paid.</summary>
    private async Task PayFencesAsync(DiskServerRecord disk, IDiskAgent client, CancellationToken ct)
    {
        var vms = (await state.VmsAsync(ct).ConfigureAwait(false)).ToDictionary(v => v.Name);
        var hosts = (await state.HostsAsync(ct).ConfigureAwait(false)).ToDictionary(h => h.Name);
        var paid = new List<PendingFence>();
        foreach (var fence in disk.PendingFences)
        {
            var holders = vms.TryGetValue(fence.Vm, out var vm) && vm.Host is { } h && hosts.TryGetValue(h, out var host)
                ? host.StorageMacs.Select(MacAddress.Parse).ToArray()
                : [];
            try
            {
                await client.SetReservationAsync(fence.Volume, holders, ct).ConfigureAwait(false);
                paid.Add(fence);
                Log.FencePaid(log, disk.Name, fence.Volume, fence.Vm, holders.Length == 0 ? "nobody" : string.Join(", ", holders));
            }
            catch (StorageException e) when (e.Error == StorageError.NotFound)
            {
                // The volume is gone (the VM was deleted or its leg replaced): nothing left to fence.
                paid.Add(fence);
            }
        }
        await state.UpdateDiskServerAsync(disk.Name, d => d with { PendingFences = [.. d.PendingFences.Except(paid)] }, ct).ConfigureAwait(false);
    }

    private static partial class Log
    {
        [LoggerMessage(6, LogLevel.Warning, "disk server {Disk} answers again: owed fence paid, {Volume} of {Vm} reserved for {Holders}")]
        public static partial void FencePaid(ILogger logger, string disk, string volume, string vm, string holders);

        [LoggerMessage(1, LogLevel.Warning, "host {Host} declared dead: {Reason}")]
        public static partial void HostDead(ILogger logger, string host, string reason);

        [LoggerMessage(2, LogLevel.Warning, "VM {Vm} of dead host {Host}: failover job {Job}")]
        public static partial void FailoverSubmitted(ILogger logger, string vm, string host, string job);

        [LoggerMessage(3, LogLevel.Warning, "VM {Vm}: no failover submitted ({Reason}); run `xenaoe vm failover` once that job ends")]
        public static partial void FailoverDeferred(ILogger logger, string vm, string reason);

        [LoggerMessage(4, LogLevel.Warning, "killed stale VM {Vm} on returning host {Host}")]
        public static partial void StaleVmKilled(ILogger logger, string vm, string host);

        [LoggerMessage(5, LogLevel.Warning, "disk server {Disk} {What}")]
        public static partial void DiskServerChanged(ILogger logger, string disk, string what);

        [LoggerMessage(7, LogLevel.Warning, "heartbeat of {Kind} {Name}: {Reason}")]
        public static partial void CheckFailed(ILogger logger, string kind, string name, string reason);
    }
}
