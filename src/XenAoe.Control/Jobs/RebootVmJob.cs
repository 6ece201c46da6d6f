namespace XenAoe.Control.Jobs;

/// <summary>Resets a running VM on its host.</summary>
public sealed class RebootVmJob(JobServices jobs) : Job<NoParameters>(JobKinds.VmReboot)
{
    protected override async Task<string> RunAsync(NoParameters p, JobContext job)
    {
        var ct = job.Cancellation;
        var vm = await jobs.VmAsync(job.Target, ct).ConfigureAwait(false);
        var hostName = vm.Host ?? throw new ControlException($"{vm.Name} is not running", 409);
        await job.StepAsync("reboot", async () =>
            await (await jobs.HostAgentAsync(hostName, ct).ConfigureAwait(false)).RebootAsync(vm.Name, ct).ConfigureAwait(false)).ConfigureAwait(false);
        return $"{vm.Name} reset on {hostName}";
    }
}
