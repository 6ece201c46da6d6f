using XenAoe.Control.Api;
using XenAoe.Control.Model;
using XenAoe.Control.Scheduling;

namespace XenAoe.Control;

/// <summary>
/// The scheduler fed from the inventory: hosts (dead ones down, those in maintenance draining), disk servers (unreachable ones
/// down, drained ones draining: no new legs) and the VMs where they run. New VMs and migrations must keep N+1; a failover may break it (a VM running without
/// headroom beats a VM not running), and its job says so.
/// </summary>
public sealed class Placement(ControllerState state, SchedulerOptions? options = null)
{
    /// <summary>The host for a VM, and whether placing it there leaves the cluster without N+1; a refusal is a 409 with the reason for every host.</summary>
    public async Task<HostChoice> ChooseHostAsync(string vm, int cpus, int memoryMiB, IReadOnlyCollection<string> exclude, CancellationToken ct,
        bool allowBreakingNPlusOne = false)
    {
        var (cluster, hosts) = await SnapshotAsync(exceptVm: vm, ct).ConfigureAwait(false);
        var result = Scheduler.PlaceVm(new PlacementRequest(vm, cpus, memoryMiB, exclude, allowBreakingNPlusOne), cluster);
        if (result.Host is not { } chosen)
            throw new ControlException($"no CPU server can take {vm}: {result.Reason}; {string.Join("; ", result.Rejections)}", 409);
        return new HostChoice(hosts[chosen], result.BreaksNPlusOne);
    }

    /// <summary>Two disk servers for the legs of a new mirror of <paramref name="sizeBytes"/>.</summary>
    public async Task<(string First, string Second, string Reason)> ChooseLegsAsync(long sizeBytes, CancellationToken ct)
    {
        var (cluster, _) = await SnapshotAsync(exceptVm: null, ct).ConfigureAwait(false);
        var result = Scheduler.PlaceMirrorLegs(sizeBytes, cluster);
        if (result is not { First: { } first, Second: { } second })
            throw new ControlException($"no two disk servers can hold a {sizeBytes}-byte mirror: {result.Reason}; {string.Join("; ", result.Rejections)}", 409);
        return (first, second, result.Reason);
    }

    /// <summary>
    /// The disk server for a new leg replacing <paramref name="leaving"/>'s beside <paramref name="staying"/>'s: neither of them,
    /// preferably in another failure domain than <paramref name="staying"/>.
    /// </summary>
    public async Task<(string Server, string Reason)> ChooseReplacementLegAsync(long sizeBytes, string staying, string leaving, CancellationToken ct)
    {
        var (cluster, _) = await SnapshotAsync(exceptVm: null, ct).ConfigureAwait(false);
        var result = Scheduler.PlaceReplacementLeg(sizeBytes, cluster, staying, [staying, leaving]);
        if (result.Server is not { } server)
            throw new ControlException($"no disk server can take the leg on {leaving}: {result.Reason}; {string.Join("; ", result.Rejections)}", 409);
        return (server, result.Reason);
    }

    public async Task<CapacityResponse> CapacityAsync(int cpus, int memoryMiB, long diskBytes, CancellationToken ct)
    {
        var (cluster, _) = await SnapshotAsync(exceptVm: null, ct).ConfigureAwait(false);
        var report = Scheduler.Capacity(new VmSize(cpus, memoryMiB, diskBytes), cluster);
        var explanation = $"{report.AdditionalKeepingNPlusOne} more VMs of {cpus} vCPU / {memoryMiB} MiB fit while the VMs of any one CPU server " +
            $"could still restart on the others (N+1); {report.AdditionalWithoutNPlusOne} if every host is filled" +
            (report.AdditionalDisks is { } disks ? $"; disk servers hold {disks} more mirrored {diskBytes}-byte disks" : "");
        return new CapacityResponse(cpus, memoryMiB, diskBytes, report.AdditionalVms, report.AdditionalWithoutNPlusOne, explanation,
            [.. report.Hosts.Select(h => new HostFree(h.Host, h.State.ToString().ToLowerInvariant(), h.VmCount, h.FreeRamMiB, h.FreeVcpus))]);
    }

    private async Task<(Cluster Cluster, Dictionary<string, HostRecord> Hosts)> SnapshotAsync(string? exceptVm, CancellationToken ct)
    {
        var hosts = (await state.HostsAsync(ct).ConfigureAwait(false)).ToDictionary(h => h.Name);
        var disks = await state.DiskServersAsync(ct).ConfigureAwait(false);
        var vms = await state.VmsAsync(ct).ConfigureAwait(false);
        var cluster = new Cluster(
            hosts.Values.Select(h => new HostCapacity(h.Name, h.Cpus, h.MemoryMiB, 0, h.Labels, h.State switch
            {
                HostState.Up => ServerState.Up,
                HostState.Maintenance => ServerState.Draining,
                _ => ServerState.Down,
            })),
            disks.Select(d => new DiskServerCapacity(d.Name, d.FreeBytes, d.Labels,
                !d.Reachable ? ServerState.Down : d.Draining ? ServerState.Draining : ServerState.Up)),
            // The VM being placed is left out: a restart or migration must not count it twice.
            vms.Where(v => v.Name != exceptVm).Select(v => new VmDemand(v.Name, v.Cpus, v.MemoryMiB, v.Host is { } h && hosts.ContainsKey(h) ? h : null,
                [.. v.Disks.Select(d => new VmDisk(d.SizeBytes, d.Legs[0].DiskServer, d.Legs[1].DiskServer))])),
            options);
        return (cluster, hosts);
    }
}

/// <param name="BreaksNPlusOne">The VMs of some CPU server could no longer all restart elsewhere (only when the caller allowed it).</param>
public sealed record HostChoice(HostRecord Host, bool BreaksNPlusOne)
{
    public string Name => Host.Name;

    /// <summary>What a job's step says about the choice.</summary>
    public string Note => BreaksNPlusOne ? " (N+1 is not kept: the VMs of some CPU server could not all restart elsewhere)" : "";
}
