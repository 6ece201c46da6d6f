using XenAoe.Control.Model;

namespace XenAoe.Control.Jobs;

/// <summary>Kills a VM wherever it runs, deletes both legs of every disk, then its record.</summary>
public sealed class DeleteVmJob(JobServices jobs) : Job<NoParameters>(JobKinds.VmDelete)
{
    protected override async Task<string> RunAsync(NoParameters p, JobContext job)
    {
        var ct = job.Cancellation;
        // A resumed job whose last step removed the record has nothing left to do.
        if (await jobs.State.VmAsync(job.Target, ct).ConfigureAwait(false) is not { } vm)
            return $"{job.Target} deleted";
        await job.StepAsync("stop", async () =>
        {
            await jobs.StopOnHostAsync(vm, force: true, ct).ConfigureAwait(false);
            // Recorded as stopped at once: a delete that fails later leaves a stopped VM, not a record of one running.
            await jobs.State.UpdateVmAsync(vm.Name, v => v with { Desired = VmDesiredState.Stopped, Host = null }, ct).ConfigureAwait(false);
        }).ConfigureAwait(false);
        await job.StepAsync("volumes", async () =>
        {
            foreach (var leg in vm.Disks.SelectMany(d => d.Legs))
                await jobs.DeleteVolumeAsync(leg, ct).ConfigureAwait(false);
        }).ConfigureAwait(false);
        await job.StepAsync("record", () => jobs.State.DeleteVmAsync(vm.Name, ct)).ConfigureAwait(false);
        return $"{vm.Name} deleted with its volumes";
    }
}
