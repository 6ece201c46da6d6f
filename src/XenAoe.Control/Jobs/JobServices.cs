using XenAoe.Agents.Disk;
using XenAoe.Agents.Host;
using XenAoe.Aoe;
using XenAoe.Control.Model;
using XenAoe.Storage;

namespace XenAoe.Control.Jobs;

/// <summary>
/// What the jobs share: the inventory, the scheduler, the agents, and the few actions several kinds take (start a VM on a host,
/// make sure a volume exists). Each action checks what is already done before acting, so a repeated step does no harm.
/// </summary>
public sealed class JobServices(ControllerState state, Placement placement, IAgents agents)
{
    public ControllerState State { get; } = state;

    public Placement Placement { get; } = placement;

    public IAgents Agents { get; } = agents;

    /// <summary>Every job kind, for the runner.</summary>
    public IReadOnlyList<IJob> Jobs() =>
    [
        new CreateVmJob(this), new StartVmJob(this), new StopVmJob(this), new RebootVmJob(this), new MigrateVmJob(this),
        new FailoverVmJob(this), new DeleteVmJob(this), new ReplaceLegJob(this), new EvacuateHostJob(this), new DrainDiskServerJob(this),
    ];

    public async Task<VmRecord> VmAsync(string name, CancellationToken ct) =>
        await State.VmAsync(name, ct).ConfigureAwait(false) ?? throw new ControlException($"no VM named {name}", 404);

    public async Task<HostRecord> HostAsync(string name, CancellationToken ct) =>
        await State.HostAsync(name, ct).ConfigureAwait(false) ?? throw new ControlException($"no host named {name}", 404);

    public async Task<DiskServerRecord> DiskServerAsync(string name, CancellationToken ct) =>
        await State.DiskServerAsync(name, ct).ConfigureAwait(false) ?? throw new ControlException($"no disk server named {name}", 404);

    public async Task<IHostAgent> HostAgentAsync(string name, CancellationToken ct) => Agents.Host((await HostAsync(name, ct).ConfigureAwait(false)).ApiUrl);

    public async Task<IDiskAgent> DiskAgentAsync(string name, CancellationToken ct) => Agents.Disk((await DiskServerAsync(name, ct).ConfigureAwait(false)).ApiUrl);

    /// <summary>Starts the VM on the host unless it already runs there, then records it there.</summary>
    /// <param name="takeOver">The VM's previous host is dead and fenced: the new host force-sets the reservations and may start degraded.</param>
    public async Task<string?> StartOnAsync(string name, string hostName, bool takeOver, CancellationToken ct)
    {
        var vm = await VmAsync(name, ct).ConfigureAwait(false);
        var host = await HostAgentAsync(hostName, ct).ConfigureAwait(false);
        if (await host.GetAsync(name, ct).ConfigureAwait(false) is not { Role: VmRole.Running })
            await host.StartAsync(new StartVmRequest(Definition(vm), TakeOver: takeOver, AllowDegraded: takeOver), ct).ConfigureAwait(false);
        await State.UpdateVmAsync(name, v => v with { Host = hostName, Desired = VmDesiredState.Running }, ct).ConfigureAwait(false);
        return $"running on {hostName}";
    }

    /// <summary>
    /// The fence: both disk servers force-set every leg's reservation to <paramref name="hostName"/>'s MACs, all legs at once, so
    /// the VM's previous host, if it was only frozen or cut off, is refused from then on. A disk server that does not answer
    /// owes the fence (paid by the heartbeat monitor when it answers again); none answering fails the step.
    /// </summary>
    public async Task<string?> FenceAsync(JobContext job, VmRecord vm, string hostName)
    {
        var ct = job.Cancellation;
        var host = await HostAsync(hostName, ct).ConfigureAwait(false);
        var macs = host.StorageMacs.Select(MacAddress.Parse).ToArray();
        if (macs.Length == 0)
            throw new ControlException($"{hostName} reported no storage NIC MACs: cannot fence for it");
        // Every leg at once: the disk servers are independent, and the restart waits only for the slowest.
        var fenced = (await Task.WhenAll(vm.Disks.SelectMany(d => d.Legs).Select(leg => FenceLegAsync(job, vm, leg, macs))).ConfigureAwait(false))
            .OfType<string>().ToList();
        if (fenced.Count == 0)
            throw new ControlException($"no disk server of {vm.Name} could be fenced: not restarting it, the old host might still write");
        return $"reservations set to {hostName} ({string.Join(", ", host.StorageMacs)}) on {string.Join(", ", fenced)}";
    }

    /// <summary>The leg's reservation set to <paramref name="macs"/>; null (and the fence owed) when its disk server does not answer.</summary>
    private async Task<string?> FenceLegAsync(JobContext job, VmRecord vm, LegRecord leg, MacAddress[] macs)
    {
        var ct = job.Cancellation;
        try
        {
            var disk = await DiskAgentAsync(leg.DiskServer, ct).ConfigureAwait(false);
            await disk.SetReservationAsync(leg.Volume, macs, ct).ConfigureAwait(false);
            return $"{leg.DiskServer}:{leg.Volume}";
        }
        catch (Exception e) when (e is HttpRequestException or TimeoutException or StorageException)
        {
            // A disk server that is down cannot be fenced now: the fence is owed and paid by the heartbeat monitor the
            // moment the server answers again; until then the new host's mirror runs without that leg.
            await State.UpdateDiskServerAsync(leg.DiskServer, d => d.PendingFences.Any(f => f.Vm == vm.Name && f.Volume == leg.Volume) ? null
                : d with { PendingFences = [.. d.PendingFences, new PendingFence(vm.Name, leg.Volume)] }, ct).ConfigureAwait(false);
            await job.LogAsync($"could not fence {leg.DiskServer}:{leg.Volume} ({e.Message}); the fence is applied when {leg.DiskServer} answers again").ConfigureAwait(false);
            return null;
        }
    }

    /// <summary>Stops (or kills) the VM where the record says it runs; nothing to do when it runs nowhere.</summary>
    public async Task StopOnHostAsync(VmRecord vm, bool force, CancellationToken ct)
    {
        if (vm.Host is null || await State.HostAsync(vm.Host, ct).ConfigureAwait(false) is not { } record)
            return;
        var host = Agents.Host(record.ApiUrl);
        if (await host.GetAsync(vm.Name, ct).ConfigureAwait(false) is null)
            return;
        if (force)
            await host.KillAsync(vm.Name, ct).ConfigureAwait(false);
        else
            await host.StopAsync(vm.Name, ct: ct).ConfigureAwait(false);
    }

    /// <summary>The volume named <paramref name="name"/> on the server, created in its shelf's lowest free slot when missing.</summary>
    public async Task<VolumeSpec> EnsureVolumeAsync(DiskServerRecord server, string name, long sizeBytes, CancellationToken ct)
    {
        var disk = Agents.Disk(server.ApiUrl);
        var volumes = await disk.ListAsync(ct).ConfigureAwait(false);
        if (volumes.FirstOrDefault(v => v.Name == name) is { } existing)
            return existing;
        var used = volumes.Where(v => v.Shelf == server.Shelf).Select(v => (int)v.Slot).ToHashSet();
        var slot = Enumerable.Range(0, 255).FirstOrDefault(s => !used.Contains(s), -1);
        if (slot < 0)
            throw new ControlException($"{server.Name} has no free slot on shelf {server.Shelf}", 409);
        return await disk.CreateAsync(new VolumeSpec { Name = name, Shelf = server.Shelf, Slot = (byte)slot, SizeBytes = sizeBytes }, ct).ConfigureAwait(false);
    }

    /// <summary>Deletes a volume; one already gone is fine (a repeated step).</summary>
    public async Task DeleteVolumeAsync(LegRecord leg, CancellationToken ct)
    {
        try
        {
            var disk = await DiskAgentAsync(leg.DiskServer, ct).ConfigureAwait(false);
            await disk.DeleteAsync(leg.Volume, force: true, ct).ConfigureAwait(false);
        }
        catch (StorageException e) when (e.Error == StorageError.NotFound)
        {
            // Already gone.
        }
    }

    /// <summary>The VM as a host is asked to run it.</summary>
    public static VmDefinition Definition(VmRecord vm) => new(vm.Name, vm.Uuid, vm.Cpus, vm.MemoryMiB, vm.Boot,
        [.. vm.Disks.Select(d => new VmDiskDefinition(d.Id, [.. d.Legs.Select(l => l.Address)]))],
        [.. vm.Macs.Select((mac, i) => new VmNicDefinition($"eth{i}", mac))],
        vm.VncDisplay);
}
