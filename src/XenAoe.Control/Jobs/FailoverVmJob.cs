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
        await job.StepAsync("fence", () => jobs.FenceAsync(job, vm, placed.Host)).ConfigureAwait(false);
        await job.StepAsync("start", () => jobs.StartOnAsync(vm.Name, placed.Host, takeOver: true, ct)).ConfigureAwait(false);
        return $"{vm.Name} restarted on {placed.Host}{(p.From is null ? "" : $" after {p.From} died")}";
    }
}
