namespace XenAoe.Control.Jobs;

/// <summary>Moves one leg of a running VM's disk to another disk server (see <see cref="LegReplacement"/>).</summary>
public sealed class ReplaceLegJob(JobServices jobs) : Job<ReplaceLegParameters>(JobKinds.VmReplaceLeg)
{
    protected override Task<string> RunAsync(ReplaceLegParameters p, JobContext job) => new LegReplacement(jobs).RunAsync(job, job.Target, p);
}
