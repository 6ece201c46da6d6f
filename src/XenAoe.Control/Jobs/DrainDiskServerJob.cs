namespace XenAoe.Control.Jobs;

/// <summary>
/// Marks a disk server draining (no new legs go there), then moves every VM disk leg off it, one after the other. The VM disks
/// are listed once and kept in the first step's result, so a resumed drain finishes (and releases) a leg whose record already moved.
/// </summary>
public sealed class DrainDiskServerJob(JobServices jobs) : Job<NoParameters>(JobKinds.DiskDrain)
{
    protected override async Task<string> RunAsync(NoParameters p, JobContext job)
    {
        var (serverName, ct) = (job.Target, job.Cancellation);
        var plan = await job.StepAsync("drain", JobJsonContext.Default.DrainPlan, async () =>
        {
            if (await jobs.State.UpdateDiskServerAsync(serverName, d => d with { Draining = true }, ct).ConfigureAwait(false) is null)
                throw new ControlException($"no disk server named {serverName}", 404);
            return new DrainPlan([.. (await jobs.State.VmsAsync(ct).ConfigureAwait(false))
                .SelectMany(v => v.Disks.Where(d => d.Legs.Any(l => l.DiskServer == serverName)).Select(d => new VmDiskRef(v.Name, d.Id)))]);
        }).ConfigureAwait(false);
        var legs = new LegReplacement(jobs);
        foreach (var disk in plan.Disks)
            await legs.RunAsync(job, disk.Vm, new ReplaceLegParameters(disk.Disk, From: serverName), stepPrefix: $"{disk} ").ConfigureAwait(false);
        return $"{serverName} drained ({plan.Disks.Count} legs moved off it) and takes no new legs";
    }
}
