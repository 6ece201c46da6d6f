namespace XenAoe.Control.Jobs;

/// <summary>Live-migrates a running VM to another host (the one asked for, or the scheduler's choice keeping N+1).</summary>
public sealed class MigrateVmJob(JobServices jobs) : Job<MigrateVmParameters>(JobKinds.VmMigrate)
{
    private static readonly JobJsonContext Json = JobJsonContext.Default;

    protected override async Task<string> RunAsync(MigrateVmParameters p, JobContext job)
    {
        var ct = job.Cancellation;
        var route = await job.StepAsync("place", Json.HostDecision, async () =>
        {
            var vm = await jobs.VmAsync(job.Target, ct).ConfigureAwait(false);
            var from = vm.Host ?? throw new ControlException($"{vm.Name} is not running: start it instead", 409);
            var to = p.To ?? (await jobs.Placement.ChooseHostAsync(vm.Name, vm.Cpus, vm.MemoryMiB, exclude: [from], ct).ConfigureAwait(false)).Name;
            if (to == from)
                throw new ControlException($"{vm.Name} already runs on {to}", 409);
            return new HostDecision(to, from);
        }).ConfigureAwait(false);
        return await new LiveMigration(jobs, job, job.Target, route.From!, route.Host).RunAsync().ConfigureAwait(false);
    }
}
