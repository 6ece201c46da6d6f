using XenAoe.Agents.Host;
using XenAoe.Control.Model;

namespace XenAoe.Control.Jobs;

/// <summary>One VM's live migration between two hosts, for <see cref="MigrateVmJob"/> and <see cref="EvacuateHostJob"/>.</summary>
public sealed class LiveMigration(JobServices jobs)
{
    /// <summary>Moves the VM and records it on <paramref name="to"/>; a migration that finished before a controller died is only recorded.</summary>
    public async Task<MigrationFigures> RunAsync(string name, string from, string to, CancellationToken ct)
    {
        var (source, destination) = (await jobs.HostAsync(from, ct).ConfigureAwait(false), await jobs.HostAsync(to, ct).ConfigureAwait(false));
        if (await jobs.Agents.Host(destination.ApiUrl).GetAsync(name, ct).ConfigureAwait(false) is { Role: VmRole.Running })
        {
            await jobs.State.UpdateVmAsync(name, v => v with { Host = to, Desired = VmDesiredState.Running }, ct).ConfigureAwait(false);
            return new MigrationFigures(null, null, null, AlreadyThere: true);
        }
        var report = await jobs.Agents.Host(source.ApiUrl).MigrateAsync(name, new MigrateVmRequest(destination.ApiUrl), ct).ConfigureAwait(false);
        if (report.Phase != MigrationPhase.Completed)
            throw new ControlException($"migration of {name} to {to} failed: {report.Error}", 409);
        await jobs.State.UpdateVmAsync(name, v => v with { Host = to, Desired = VmDesiredState.Running }, ct).ConfigureAwait(false);
        return new MigrationFigures(report.TotalMs, report.DowntimeMs, report.HandoverMs);
    }
}
