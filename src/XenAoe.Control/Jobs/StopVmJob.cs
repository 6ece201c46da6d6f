using XenAoe.Control.Model;

namespace XenAoe.Control.Jobs;

/// <summary>Stops a VM (gracefully, or killed with <see cref="StopVmParameters.Force"/>) and records it stopped.</summary>
public sealed class StopVmJob(JobServices jobs) : Job<StopVmParameters>(JobKinds.VmStop)
{
    protected override async Task<string> RunAsync(StopVmParameters p, JobContext job)
    {
        var ct = job.Cancellation;
        var vm = await jobs.VmAsync(job.Target, ct).ConfigureAwait(false);
        await job.StepAsync("stop", async () =>
        {
            await jobs.StopOnHostAsync(vm, p.Force, ct).ConfigureAwait(false);
            await jobs.State.UpdateVmAsync(vm.Name, v => v with { Desired = VmDesiredState.Stopped, Host = null }, ct).ConfigureAwait(false);
        }).ConfigureAwait(false);
        return $"{vm.Name} stopped";
    }
}
