using XenAoe.Agents.Host;
using XenAoe.Control.Model;

namespace XenAoe.Control.Jobs;

/// <summary>
/// One VM's live migration between two hosts, sequenced by the controller as job steps (for <see cref="MigrateVmJob"/> and
/// <see cref="EvacuateHostJob"/>): <c>prepare DEST</c> (the destination joins the disks and waits for the memory),
/// <c>transfer</c> (the source's hypervisor sends it), <c>hand over from SOURCE</c> (the source's paused copy ends and its
/// disks close), <c>activate on DEST</c> (the destination fences the source and lets the guest's I/O through), <c>record on DEST</c>.
/// Each step first looks where the VM really is, so a step repeated (a lost answer, a new leader resuming) does what is still
/// to do and nothing twice; the hosts' calls are each safe to repeat.
/// </summary>
/// <remarks>
/// The VM runs on exactly one host throughout: until the transfer completes on the source; from then on, paused there and running
/// on the destination with its I/O waiting, until the source lets go and the destination's activation fences the source. A step
/// that fails leads to <c>recover</c>, decided from what the hosts report: the VM on the destination already is finished;
/// a source that still holds it keeps it (the destination's copy is aborted first, then the source's migration cancelled, so the
/// two never run together); a VM that runs nowhere — its source declared dead by the heartbeat monitor mid-transfer, or let go
/// with the destination unable to take it — is restarted from its disk after the fence, as a failover does.
/// </remarks>
public sealed class LiveMigration(JobServices jobs, JobContext job, string name, string from, string to, string? label = null)
{
    /// <summary>How often the transfer's progress is asked for: the memory of a small VM goes over in a few hundred milliseconds.</summary>
    private static readonly TimeSpan TransferPoll = TimeSpan.FromMilliseconds(50);

    /// <summary>How long a silent source may take to be declared dead by the heartbeat monitor (or to answer again) before the job gives up.</summary>
    public static readonly TimeSpan SourceVerdict = TimeSpan.FromSeconds(60);

    private static readonly JobJsonContext Json = JobJsonContext.Default;
    private CancellationToken Ct => job.Cancellation;

    /// <summary>Moves the VM and records it on the destination; returns the job's summary, or throws once a failed one is rolled back.</summary>
    public async Task<string> RunAsync()
    {
        var (source, destination) = (await jobs.HostAgentAsync(from, Ct).ConfigureAwait(false), await jobs.HostAgentAsync(to, Ct).ConfigureAwait(false));
        string? failure = null;
        if (!job.Began(Step("recover")))
        {
            try
            {
                return await MoveAsync(source, destination).ConfigureAwait(false);
            }
            catch (Exception e) when (!(e is OperationCanceledException && Ct.IsCancellationRequested))
            {
                failure = e.Message;
            }
        }
        return await RecoverAsync(source, destination, failure ?? "interrupted").ConfigureAwait(false);
    }

    private string Step(string what) => label is null ? what : $"{what} ({label})";

    private async Task<string> MoveAsync(IHostAgent source, IHostAgent destination)
    {
        var vm = await jobs.VmAsync(name, Ct).ConfigureAwait(false);
        var incoming = await job.StepAsync(Step($"prepare {to}"), Json.IncomingCopy, async () =>
        {
            if (await RunsAsync(destination).ConfigureAwait(false))
                return new IncomingCopy(null);
            var running = await source.GetAsync(name, Ct).ConfigureAwait(false) ?? throw new ControlException($"{name} does not run on {from}", 409);
            var sizes = running.Disks.Select(d => d.SizeBytes).ToArray();
            var prepared = await destination.PrepareIncomingAsync(new IncomingVmRequest(JobServices.Definition(vm), sizes), Ct).ConfigureAwait(false);
            return new IncomingCopy(prepared.MigrationUri);
        }).ConfigureAwait(false);

        var transfer = await job.StepAsync(Step("transfer"), Json.TransferFigures, async () =>
        {
            if (incoming.MigrationUri is not { } uri || await RunsAsync(destination).ConfigureAwait(false))
                return new TransferFigures(null, null, null);
            var report = await source.MigrationAsync(name, Ct).ConfigureAwait(false);
            if (report is not { Phase: MigrationPhase.Transferring or MigrationPhase.Transferred } || report.MigrationUri != uri)
                report = await source.StartMigrationAsync(name, new StartMigrationRequest(uri), Ct).ConfigureAwait(false);
            while (report.Phase == MigrationPhase.Transferring)
            {
                await Task.Delay(TransferPoll, jobs.State.Time, Ct).ConfigureAwait(false);
                report = await source.MigrationAsync(name, Ct).ConfigureAwait(false)
                    ?? throw new ControlException($"{from} no longer reports a migration of {name}", 409);
            }
            if (report.Phase != MigrationPhase.Transferred)
                throw new ControlException($"the transfer of {name} to {to} failed: {report.Error}", 409);
            return new TransferFigures(report.TotalMs, report.DowntimeMs, report.RamTransferred);
        }).ConfigureAwait(false);

        var handover = await job.StepAsync(Step($"hand over from {from}"), Json.Handover, async () =>
        {
            var at = jobs.State.Time.GetUtcNow();
            if (await source.GetAsync(name, Ct).ConfigureAwait(false) is null)
                return new Handover(at, null, null);
            var done = await source.HandOverAsync(name, Ct).ConfigureAwait(false);
            return new Handover(at, done.QuitMs, done.ClosedMs);
        }).ConfigureAwait(false);

        var figures = await job.StepAsync(Step($"activate on {to}"), Json.MigrationFigures, async () =>
        {
            await destination.ActivateIncomingAsync(name, Ct).ConfigureAwait(false);
            return new MigrationFigures(transfer.TotalMs, transfer.DowntimeMs, (jobs.State.Time.GetUtcNow() - handover.At).TotalMilliseconds);
        }).ConfigureAwait(false);

        await RecordAsync(destination).ConfigureAwait(false);
        return $"{name} migrated to {to}: {figures.Summary}";
    }

    private async Task RecordAsync(IHostAgent destination) => await job.StepAsync(Step($"record on {to}"), async () =>
    {
        if (!await RunsAsync(destination).ConfigureAwait(false))
            throw new ControlException($"{name} does not run on {to}: not recording it there", 409);
        await jobs.State.UpdateVmAsync(name, v => v with { Host = to, Desired = VmDesiredState.Running }, Ct).ConfigureAwait(false);
        return $"{name} runs on {to}";
    }).ConfigureAwait(false);

    private async Task<string> RecoverAsync(IHostAgent source, IHostAgent destination, string failure)
    {
        var plan = await job.StepAsync(Step("recover"), Json.MigrationRecovery, () => DecideAsync(source, destination, failure)).ConfigureAwait(false);
        switch (plan.Plan)
        {
            case MigrationRecoveryPlan.Finish:
                await job.StepAsync(Step($"hand over from {from} (recovering)"), async () =>
                    await source.GetAsync(name, Ct).ConfigureAwait(false) is { Role: VmRole.Migrating }
                        && (await source.HandOverAsync(name, Ct).ConfigureAwait(false)).ClosedMs is { } closed
                        ? $"source let go: {closed:0} ms"
                        : "the source holds no copy").ConfigureAwait(false);
                await RecordAsync(destination).ConfigureAwait(false);
                return $"{name} migrated to {to} (finished after: {plan.Why})";
            case MigrationRecoveryPlan.RollBack:
                await job.StepAsync(Step($"abort on {to}"), () => AbortIncomingAsync(destination)).ConfigureAwait(false);
                await job.StepAsync(Step($"cancel on {from}"), async () =>
                {
                    if (await source.GetAsync(name, Ct).ConfigureAwait(false) is null)
                        return $"{from} holds no copy of {name}";
                    await source.CancelMigrationAsync(name, Ct).ConfigureAwait(false);
                    return $"{name} runs on {from}";
                }).ConfigureAwait(false);
                throw new ControlException($"migration of {name} to {to} failed and was rolled back, it runs on {from}: {plan.Why}", 409);
            default:
                var host = plan.Host!;
                var vm = await jobs.VmAsync(name, Ct).ConfigureAwait(false);
                await job.StepAsync(Step($"abort on {to}"), () => AbortIncomingAsync(destination)).ConfigureAwait(false);
                await job.StepAsync(Step($"fence {from}"), () => jobs.FenceAsync(job, vm, host)).ConfigureAwait(false);
                await job.StepAsync(Step($"restart on {host}"), () => jobs.StartOnAsync(name, host, takeOver: true, Ct)).ConfigureAwait(false);
                return $"{name} restarted from its disk on {host}: the live migration could not finish ({plan.Why})";
        }
    }

    /// <summary>What to do, from where the VM is now; a source that does not answer is waited for until it answers or is declared dead.</summary>
    private async Task<MigrationRecovery> DecideAsync(IHostAgent source, IHostAgent destination, string failure)
    {
        var deadline = jobs.State.Time.GetUtcNow() + SourceVerdict;
        while (true)
        {
            var (destinationAnswers, there) = await AskAsync(destination).ConfigureAwait(false);
            if (there is { Role: VmRole.Running })
                return new MigrationRecovery(MigrationRecoveryPlan.Finish, to, failure);
            var (sourceAnswers, here) = await AskAsync(source).ConfigureAwait(false);
            if (sourceAnswers)
            {
                // Before the hand-over began, a source without the VM lost it some other way: nothing of this job to restart.
                if (here is { Role: VmRole.Running or VmRole.Migrating } || !job.Began(Step($"hand over from {from}")))
                    return new MigrationRecovery(MigrationRecoveryPlan.RollBack, null, failure);
                return new MigrationRecovery(MigrationRecoveryPlan.Restart, await SurvivorAsync(destinationAnswers).ConfigureAwait(false),
                    $"{failure}; {from} no longer holds {name}");
            }
            if ((await jobs.HostAsync(from, Ct).ConfigureAwait(false)).State == HostState.Dead)
                return new MigrationRecovery(MigrationRecoveryPlan.Restart, await SurvivorAsync(destinationAnswers).ConfigureAwait(false),
                    $"{failure}; {from} was declared dead");
            if (jobs.State.Time.GetUtcNow() > deadline)
                throw new ControlException($"{from} does not answer and was not declared dead within {SourceVerdict.TotalSeconds:0} s: where {name} runs " +
                    $"is unknown; once {from} is back or declared dead, run `xenaoe vm failover {name}` if it runs nowhere ({failure})", 409);
            await Task.Delay(TimeSpan.FromMilliseconds(500), jobs.State.Time, Ct).ConfigureAwait(false);
        }
    }

    /// <summary>The destination when it answers (it was chosen with room for the VM), or the scheduler's choice of another host.</summary>
    private async Task<string> SurvivorAsync(bool destinationAnswers)
    {
        if (destinationAnswers)
            return to;
        var vm = await jobs.VmAsync(name, Ct).ConfigureAwait(false);
        return (await jobs.Placement.ChooseHostAsync(name, vm.Cpus, vm.MemoryMiB, exclude: [from, to], Ct, allowBreakingNPlusOne: true).ConfigureAwait(false)).Name;
    }

    private async Task<string?> AbortIncomingAsync(IHostAgent destination)
    {
        try
        {
            await destination.AbortIncomingAsync(name, Ct).ConfigureAwait(false);
            return $"no copy of {name} waits on {to}";
        }
        catch (Exception e) when (e is HttpRequestException or TimeoutException)
        {
            // A destination that does not answer cannot be asked; its copy never got its disks activated, so it never writes, and the
            // reservations it joined go with the next force-set by whoever runs the VM.
            return $"{to} does not answer ({e.Message}); its copy, never activated, cannot write";
        }
    }

    private async Task<bool> RunsAsync(IHostAgent host) => await host.GetAsync(name, Ct).ConfigureAwait(false) is { Role: VmRole.Running };

    /// <summary>Whether the host answered, and what it holds of the VM.</summary>
    private async Task<(bool Answers, VmStatus? Vm)> AskAsync(IHostAgent host)
    {
        try
        {
            return (true, await host.GetAsync(name, Ct).ConfigureAwait(false));
        }
        catch (Exception e) when (e is HttpRequestException or TimeoutException)
        {
            return (false, null);
        }
    }
}
