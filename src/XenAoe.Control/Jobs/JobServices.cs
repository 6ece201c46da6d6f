using XenAoe.Agents.Disk;
using XenAoe.Agents.Host;
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
