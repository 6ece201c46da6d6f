using XenAoe.Aoe;
using XenAoe.Control.Model;
using XenAoe.Storage;

namespace XenAoe.Control.Jobs;

/// <summary>
/// Restarts a VM whose host is dead: a new host first, then the fence (both disk servers force-set every leg's reservation
/// to the new host's MACs, at once, so the old host, if it was only frozen or cut off, is refused from then on), then the
/// start. The start follows the fence, which takes tens of milliseconds: one simple rule, nothing starts before the old host
/// is refused.
/// </summary>
public sealed class FailoverVmJob(JobServices jobs) : Job<FailoverVmParameters>(JobKinds.VmFailover)
{
    protected override async Task<string> RunAsync(FailoverVmParameters p, JobContext job)
    {
        var ct = job.Cancellation;
        var vm = await jobs.VmAsync(job.Target, ct).ConfigureAwait(false);
        var placed = await job.StepAsync("place", JobJsonContext.Default.HostDecision, async () =>
        {
            var dead = p.From ?? vm.Host;
            // A failover spends the N+1 headroom it was kept for: the VM runs again even if that leaves none.
            var choice = await jobs.Placement.ChooseHostAsync(vm.Name, vm.Cpus, vm.MemoryMiB, exclude: dead is null ? [] : [dead], ct,
                allowBreakingNPlusOne: true).ConfigureAwait(false);
            return new HostDecision(choice.Name, dead ?? "nowhere", choice.Note);
        }).ConfigureAwait(false);
        await job.StepAsync("fence", () => FenceAsync(job, vm, placed.Host)).ConfigureAwait(false);
        await job.StepAsync("start", () => jobs.StartOnAsync(vm.Name, placed.Host, takeOver: true, ct)).ConfigureAwait(false);
        return $"{vm.Name} restarted on {placed.Host}{(p.From is null ? "" : $" after {p.From} died")}";
    }

    private async Task<string?> FenceAsync(JobContext job, VmRecord vm, string hostName)
    {
        var ct = job.Cancellation;
        var host = await jobs.HostAsync(hostName, ct).ConfigureAwait(false);
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
            var disk = await jobs.DiskAgentAsync(leg.DiskServer, ct).ConfigureAwait(false);
            await disk.SetReservationAsync(leg.Volume, macs, ct).ConfigureAwait(false);
            return $"{leg.DiskServer}:{leg.Volume}";
        }
        catch (Exception e) when (e is HttpRequestException or TimeoutException or StorageException)
        {
            // A disk server that is down cannot be fenced now: the fence is owed and paid by the heartbeat monitor the
            // moment the server answers again; until then the new host's mirror runs without that leg.
            await jobs.State.UpdateDiskServerAsync(leg.DiskServer, d => d.PendingFences.Any(f => f.Vm == vm.Name && f.Volume == leg.Volume) ? null
                : d with { PendingFences = [.. d.PendingFences, new PendingFence(vm.Name, leg.Volume)] }, ct).ConfigureAwait(false);
            await job.LogAsync($"could not fence {leg.DiskServer}:{leg.Volume} ({e.Message}); the fence is applied when {leg.DiskServer} answers again").ConfigureAwait(false);
            return null;
        }
    }
}
