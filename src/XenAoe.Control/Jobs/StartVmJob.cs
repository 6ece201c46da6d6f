using XenAoe.Control.Model;

namespace XenAoe.Control.Jobs;

/// <summary>
/// Starts a stopped VM: where it last ran if that host is up, else where the scheduler says. A VM the controller stopped runs
/// nowhere (its host closed its disks before the stop was recorded) but its legs stay reserved for that host, so the start
/// takes the reservations over, wherever it is placed.
/// </summary>
public sealed class StartVmJob(JobServices jobs) : Job<NoParameters>(JobKinds.VmStart)
{
    protected override async Task<string> RunAsync(NoParameters p, JobContext job)
    {
        var ct = job.Cancellation;
        var vm = await jobs.VmAsync(job.Target, ct).ConfigureAwait(false);
        var placed = await job.StepAsync("place", JobJsonContext.Default.HostDecision, async () =>
        {
            var current = vm.Host is { } h ? await jobs.State.HostAsync(h, ct).ConfigureAwait(false) : null;
            return new HostDecision(current is { State: HostState.Up } ? current.Name
                : (await jobs.Placement.ChooseHostAsync(vm.Name, vm.Cpus, vm.MemoryMiB, exclude: [], ct).ConfigureAwait(false)).Name);
        }).ConfigureAwait(false);
        await job.StepAsync("start", () => jobs.StartOnAsync(vm.Name, placed.Host, takeOver: vm.Host is null, ct)).ConfigureAwait(false);
        return $"{vm.Name} running on {placed.Host}";
    }
}
