using XenAoe.Control.Model;

namespace XenAoe.Control.Jobs;

/// <summary>Live-migrates everything off a host and leaves it in maintenance (nothing new is placed there).</summary>
public sealed class EvacuateHostJob(JobServices jobs) : Job<NoParameters>(JobKinds.HostEvacuate)
{
    private static readonly JobJsonContext Json = JobJsonContext.Default;

    protected override async Task<string> RunAsync(NoParameters p, JobContext job)
    {
        var (hostName, ct) = (job.Target, job.Cancellation);
        await job.StepAsync("maintenance", async () =>
        {
            if (await jobs.State.UpdateHostAsync(hostName, h => h with { State = HostState.Maintenance, StateReason = $"evacuated by job {job.Id}" }, ct).ConfigureAwait(false) is null)
                throw new ControlException($"no host named {hostName}", 404);
        }).ConfigureAwait(false);
        var moved = 0;
        foreach (var vm in (await jobs.State.VmsAsync(ct).ConfigureAwait(false)).Where(v => v.Host == hostName))
        {
            // Maintenance is the operator's call: a cluster too small to keep N+1 without this host still gets emptied, and
            // the job says that N+1 is not kept meanwhile.
            var placed = await job.StepAsync($"place {vm.Name}", Json.HostDecision, async () =>
            {
                var choice = await jobs.Placement.ChooseHostAsync(vm.Name, vm.Cpus, vm.MemoryMiB, exclude: [hostName], ct, allowBreakingNPlusOne: true).ConfigureAwait(false);
                return new HostDecision(choice.Name, hostName, choice.Note);
            }).ConfigureAwait(false);
            await new LiveMigration(jobs, job, vm.Name, hostName, placed.Host, label: vm.Name).RunAsync().ConfigureAwait(false);
            moved++;
        }
        return $"{hostName} evacuated ({moved} VMs moved) and in maintenance";
    }
}
