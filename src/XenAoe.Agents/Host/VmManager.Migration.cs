using System.Diagnostics;
using XenAoe.Block;
using XenAoe.Hypervisors;

namespace XenAoe.Agents.Host;

/// <summary>
/// Live migration, storage first, one step per call so that the controller sequences it (each step is safe to repeat). The
/// destination opens the legs and joins their reservations (both hosts may write while the hypervisor moves RAM), exports each
/// disk as a <see cref="PendingBlockDevice"/> whose requests wait, and starts the hypervisor waiting for the VM
/// (<see cref="PrepareIncomingAsync"/>). The source sends the memory (<see cref="StartMigrationAsync"/>, observed with
/// <see cref="MigrationOfAsync"/>). Once the hypervisor reports the transfer complete the source copy is paused for good and the
/// hand-over (<see cref="HandOverAsync"/>) ends it and closes its mirrors (clean superblocks); the destination's
/// <see cref="ActivateIncomingAsync"/> then force-sets the reservations to itself alone (the source is fenced from then on) and
/// assembles the mirrors, and the guest's waiting I/O proceeds. A migration given up before the hand-over is undone in the
/// other order: <see cref="AbortIncomingAsync"/> on the destination first, then <see cref="CancelMigrationAsync"/> here, so the
/// VM never runs on both. Once a step that changes where the VM runs has begun, it runs to its end even if the caller goes away
/// (a controller that dies mid-call): only the wait for the VM's gate follows the request's cancellation.
/// </summary>
public sealed partial class VmManager
{
    /// <summary>Source: starts sending <paramref name="name"/> to <see cref="StartMigrationRequest.MigrationUri"/>; repeated, reports the one under way.</summary>
    public async Task<MigrationReport> StartMigrationAsync(string name, StartMigrationRequest request, CancellationToken ct)
    {
        var vm = await EnterAsync(name, ct).ConfigureAwait(false);
        try
        {
            if (vm.Role == VmRole.Migrating && vm.Migration?.MigrationUri == request.MigrationUri)
                return (await RefreshMigrationAsync(vm, ct).ConfigureAwait(false))!;
            if (vm.Role == VmRole.Migrating)
                throw HostException.Conflict($"VM '{name}' is already migrating to {vm.Migration?.MigrationUri}");
            if (vm.Role != VmRole.Running)
                throw HostException.Conflict($"VM '{name}' is {vm.Role.ToString().ToLowerInvariant()}");
            var options = request.DowntimeLimitMs is { } limit ? new MigrationOptions { DowntimeLimit = TimeSpan.FromMilliseconds(limit) } : null;
            await _driver.MigrateAsync(name, request.MigrationUri, options, CancellationToken.None).ConfigureAwait(false);
            vm.Role = VmRole.Migrating;
            vm.Migration = new MigrationReport(request.MigrationUri, MigrationPhase.Transferring, null, null, null, null, null, null);
            Log.Migration(_log, name, "started", request.MigrationUri);
            return vm.Migration;
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    /// <summary>Source: the migration under way as the hypervisor reports it now, or the last one given up; null if none.</summary>
    public async Task<MigrationReport?> MigrationOfAsync(string name, CancellationToken ct) => await RefreshMigrationAsync(Find(name), ct).ConfigureAwait(false);

    /// <summary>
    /// Source, once the transfer is complete: ends the paused copy, closes the mirrors cleanly and forgets the VM. The hypervisor
    /// refuses unless it reports the transfer complete (otherwise the VM would run nowhere). Repeated once the VM is gone (a
    /// controller resuming the step while the first call still ran), answers that nothing was held.
    /// </summary>
    public async Task<HandoverResponse> HandOverAsync(string name, CancellationToken ct)
    {
        if (await TryEnterAsync(name, ct).ConfigureAwait(false) is not { } vm)
            return new HandoverResponse(null, null);
        try
        {
            if (vm.Role != VmRole.Migrating)
                throw HostException.Conflict($"VM '{name}' is {vm.Role.ToString().ToLowerInvariant()}, not migrating: nothing to hand over");
            var clock = Stopwatch.StartNew();
            await _driver.FinalizeSourceAsync(name, succeeded: true, CancellationToken.None).ConfigureAwait(false);
            var quit = clock.Elapsed;
            await TearDownAsync(vm).ConfigureAwait(false);
            _vms.TryRemove(name, out _);
            Log.Migration(_log, name, "handed over", $"source ended after {quit.TotalMilliseconds:0} ms, disks closed after {clock.Elapsed.TotalMilliseconds:0} ms");
            return new HandoverResponse(quit.TotalMilliseconds, clock.Elapsed.TotalMilliseconds);
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    /// <summary>
    /// Source: gives the migration up and makes sure the VM runs here; nothing to do when none is under way. Only after the
    /// destination's copy is gone (<see cref="AbortIncomingAsync"/>): past a complete transfer that copy runs the guest.
    /// </summary>
    public async Task CancelMigrationAsync(string name, CancellationToken ct)
    {
        var vm = await EnterAsync(name, ct).ConfigureAwait(false);
        try
        {
            if (vm.Role != VmRole.Migrating)
                return;
            var report = await RefreshMigrationAsync(vm, CancellationToken.None).ConfigureAwait(false);
            await _driver.FinalizeSourceAsync(name, succeeded: false, CancellationToken.None).ConfigureAwait(false);
            vm.Role = VmRole.Running;
            vm.Migration = report! with { Phase = MigrationPhase.Failed, Error = report.Error ?? "cancelled" };
            Log.Migration(_log, name, "cancelled", vm.Migration.Error!);
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    private async Task<MigrationReport?> RefreshMigrationAsync(HostedVm vm, CancellationToken ct)
    {
        if (vm.Role != VmRole.Migrating || vm.Migration is not { } report)
            return vm.Migration;
        MigrationStatus status;
        try
        {
            status = await _driver.MigrationStatusAsync(vm.Definition.Name, ct).ConfigureAwait(false);
        }
        catch (HypervisorException e)
        {
            status = MigrationStatus.None with { State = MigrationState.Failed, Error = e.Message };
        }
        var phase = status.State switch
        {
            MigrationState.Completed => MigrationPhase.Transferred,
            MigrationState.Failed or MigrationState.Cancelled => MigrationPhase.Failed,
            _ => MigrationPhase.Transferring,
        };
        return vm.Migration = report with
        {
            Phase = phase,
            HypervisorState = status.RawState,
            TotalMs = status.TotalTime?.TotalMilliseconds ?? report.TotalMs,
            DowntimeMs = status.Downtime?.TotalMilliseconds ?? report.DowntimeMs,
            RamTransferred = status.RamTransferred ?? report.RamTransferred,
            RamTotal = status.RamTotal ?? report.RamTotal,
            Error = phase == MigrationPhase.Failed ? status.Error ?? $"the hypervisor ended the migration as {status.RawState}" : null,
        };
    }

    /// <summary>
    /// Destination: joins the disks, exports them pending, creates the TAPs and starts the hypervisor waiting for the VM; repeated
    /// for the same VM, answers where it waits.
    /// </summary>
    public async Task<IncomingVmResponse> PrepareIncomingAsync(IncomingVmRequest request, CancellationToken ct)
    {
        var definition = request.Vm;
        Check(definition);
        if (request.DiskSizes.Count != definition.Disks.Count || request.DiskSizes.Any(s => s <= 0 || s % IBlockDevice.SectorSize != 0))
            throw new HostException("diskSizes must give one positive, sector-aligned size per disk");
        var address = _options.Listen?.Address
            ?? throw new HostException($"{_options.Name} has no management address (--listen) to receive migrations on", 409);
        // Gated before anyone can see it (a repeated prepare or an abort waits for this one to end), and never left behind: a
        // request cancelled here must not leave an incoming copy that nothing prepared.
        var vm = new HostedVm(definition, VmRole.Incoming);
        vm.Gate.Wait(CancellationToken.None);
        if (!_vms.TryAdd(definition.Name, vm))
        {
            vm.Gate.Release();
            return await RepeatedPrepareAsync(definition, ct).ConfigureAwait(false);
        }
        try
        {
            for (var i = 0; i < definition.Disks.Count; i++)
            {
                var disk = definition.Disks[i];
                var hosted = new HostedDisk(disk, ExportName(definition, disk));
                vm.Disks.Add(hosted);
                hosted.Standby = await MirrorDataPath.PrepareIncomingAsync(DataPathOptions(definition, disk, takeOver: false, allowDegraded: true), ct).ConfigureAwait(false);
                var preview = await hosted.Standby.OpenPreviewAsync(ct).ConfigureAwait(false);
                if (preview.Size != request.DiskSizes[i])
                    throw new HostException($"disk {disk.Id} holds {preview.Size} bytes here but {request.DiskSizes[i]} on the source: not the same mirror", 409);
                hosted.Pending = new PendingBlockDevice(request.DiskSizes[i], disk.ReadOnly, preview);
                _nbd.AddExport(hosted.Export, hosted.Pending, $"{definition.Name} {disk.Id} (incoming)");
            }
            await CreateTapsAsync(vm, ct).ConfigureAwait(false);
            var uri = $"tcp:{(address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{address}]" : address)}:{FreePort(address)}";
            await _driver.PrepareIncomingAsync(Spec(definition), uri, ct).ConfigureAwait(false);
            vm.IncomingUri = uri;
            Log.Migration(_log, definition.Name, "incoming", uri);
            return new IncomingVmResponse(uri);
        }
        catch
        {
            await TearDownAsync(vm).ConfigureAwait(false);
            _vms.TryRemove(definition.Name, out _);
            throw;
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    /// <summary>The address of the incoming copy an earlier prepare of the same VM made, once that prepare has ended.</summary>
    private async Task<IncomingVmResponse> RepeatedPrepareAsync(VmDefinition definition, CancellationToken ct)
    {
        if (!_vms.TryGetValue(definition.Name, out var existing) || existing.Role != VmRole.Incoming || existing.Definition.Uuid != definition.Uuid)
            throw HostException.Conflict($"VM '{definition.Name}' already exists on {_options.Name}");
        if (await TryEnterAsync(definition.Name, ct).ConfigureAwait(false) is { } now)
        {
            try
            {
                if (now == existing && now.IncomingUri is { } waiting)
                    return new IncomingVmResponse(waiting);
            }
            finally
            {
                now.Gate.Release();
            }
        }
        // The earlier prepare failed (and gave everything back) while this one waited: the caller's retry starts afresh.
        throw new HostException($"VM '{definition.Name}': an earlier prepare of its incoming copy failed meanwhile; prepare again", 503);
    }

    /// <summary>
    /// Destination, once the source closed its mirrors: fences the source, assembles the mirrors, lets the VM's I/O through.
    /// Nothing to do when the VM already runs here.
    /// </summary>
    public async Task ActivateIncomingAsync(string name, CancellationToken ct)
    {
        var vm = await EnterAsync(name, ct).ConfigureAwait(false);
        try
        {
            if (vm.Role == VmRole.Running)
                return;
            if (vm.Role != VmRole.Incoming)
                throw HostException.Conflict($"VM '{name}' is not an incoming migration here");
            var clock = Stopwatch.StartNew();
            foreach (var disk in vm.Disks)
            {
                try
                {
                    disk.Path = await disk.Standby!.ActivateAsync(CancellationToken.None).ConfigureAwait(false);
                    disk.Standby = null;
                    disk.Pending!.Activate(disk.Path.Mirror);
                }
                catch (Exception e)
                {
                    disk.Pending!.Fail($"disk {disk.Definition.Id} could not be assembled after the migration: {e.Message}");
                    throw;
                }
            }
            var assembled = clock.Elapsed;
            await _driver.FinalizeDestinationAsync(name, succeeded: true, CancellationToken.None).ConfigureAwait(false);
            vm.Role = VmRole.Running;
            vm.IncomingUri = null;
            Log.Migration(_log, name, "arrived", $"disks assembled in {assembled.TotalMilliseconds:0} ms, VM running after {clock.Elapsed.TotalMilliseconds:0} ms");
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    /// <summary>
    /// Destination, when the migration is given up: ends the waiting hypervisor and gives the disks' reservations back. Nothing to
    /// do when this host has no such VM; one that runs here (activated) is refused.
    /// </summary>
    public async Task AbortIncomingAsync(string name, CancellationToken ct)
    {
        if (await TryEnterAsync(name, ct).ConfigureAwait(false) is not { } vm)
            return;
        try
        {
            if (vm.Role != VmRole.Incoming)
                throw HostException.Conflict($"VM '{name}' runs here: not an incoming migration to abort");
            // A prepare that failed before its hypervisor started leaves none to end.
            if (await _driver.InfoAsync(name, CancellationToken.None).ConfigureAwait(false) is not null)
                await _driver.FinalizeDestinationAsync(name, succeeded: false, CancellationToken.None).ConfigureAwait(false);
            await TearDownAsync(vm).ConfigureAwait(false);
            _vms.TryRemove(name, out _);
            Log.Migration(_log, name, "aborted", "incoming VM removed");
        }
        finally
        {
            vm.Gate.Release();
        }
    }
}
