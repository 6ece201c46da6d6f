using System.Diagnostics;
using XenAoe.Block;
using XenAoe.Hypervisors;

namespace XenAoe.Agents.Host;

/// <summary>
/// Live migration, storage first. The destination opens the legs and joins their reservations (both hosts may write while
/// the hypervisor moves RAM), exports each disk as a <see cref="PendingBlockDevice"/> whose requests wait, and starts the
/// hypervisor waiting for the VM. When the hypervisor reports completion the source copy is paused for good: the source
/// ends it, closes its mirrors (clean superblocks), and tells the destination to activate, which force-sets the reservations
/// to itself alone (the source is fenced from then on) and assembles the mirrors; the guest's waiting I/O then proceeds.
/// A migration that fails before completion leaves the VM running on the source and the destination gives everything back.
/// </summary>
public sealed partial class VmManager
{
    /// <summary>Source: moves <paramref name="name"/> to the host at <see cref="MigrateVmRequest.Destination"/>; returns the final report.</summary>
    public async Task<MigrationReport> MigrateAsync(string name, MigrateVmRequest request, CancellationToken ct)
    {
        var vm = Find(name);
        await vm.Gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (vm.Role != VmRole.Running)
                throw HostException.Conflict($"VM '{name}' is {vm.Role.ToString().ToLowerInvariant()}");
            if (request.Destination == _options.ApiUrl)
                throw new HostException($"VM '{name}' already runs on {_options.Name}");
            using var destination = new HostApiClient(request.Destination, token: _options.Token);
            vm.Role = VmRole.Migrating;
            var report = new MigrationReport(request.Destination, MigrationPhase.Preparing, null, null, null, null, null, null, null);
            vm.Migration = report;
            var clock = Stopwatch.StartNew();
            IncomingVmResponse incoming;
            try
            {
                var sizes = vm.Disks.Select(d => d.Path!.Mirror.Size).ToArray();
                incoming = await destination.PrepareIncomingAsync(new IncomingVmRequest(vm.Definition, sizes), ct).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                vm.Role = VmRole.Running;
                return vm.Migration = report with { Phase = MigrationPhase.Failed, Error = $"the destination could not prepare: {e.Message}" };
            }

            MigrationStatus status;
            try
            {
                var options = request.DowntimeLimitMs is { } limit ? new MigrationOptions { DowntimeLimit = TimeSpan.FromMilliseconds(limit) } : null;
                await _driver.MigrateAsync(name, incoming.MigrationUri, options, ct).ConfigureAwait(false);
                Log.Migration(_log, name, "started", incoming.MigrationUri);
                do
                {
                    await Task.Delay(MigrationPoll, ct).ConfigureAwait(false);
                    status = await _driver.MigrationStatusAsync(name, ct).ConfigureAwait(false);
                    vm.Migration = report = Progress(report, status, MigrationPhase.Transferring);
                }
                while (!status.IsFinished);
            }
            catch (Exception e)
            {
                status = MigrationStatus.None with { State = MigrationState.Failed, Error = e.Message };
            }

            if (status.State != MigrationState.Completed)
            {
                // Still the source's VM: the destination's copy goes first, then the VM runs here again (never on both).
                await AbortRemoteAsync(destination, name).ConfigureAwait(false);
                await _driver.FinalizeSourceAsync(name, succeeded: false, CancellationToken.None).ConfigureAwait(false);
                vm.Role = VmRole.Running;
                Log.Migration(_log, name, "failed", status.Error ?? status.RawState);
                return vm.Migration = Progress(report, status, MigrationPhase.Failed) with { Error = status.Error ?? $"the hypervisor ended the migration as {status.RawState}" };
            }

            // The VM now belongs to the destination: hand the disks over.
            var handover = Stopwatch.StartNew();
            vm.Migration = report = Progress(report, status, MigrationPhase.HandingOver);
            await _driver.FinalizeSourceAsync(name, succeeded: true, CancellationToken.None).ConfigureAwait(false);
            var quit = handover.Elapsed;
            await TearDownAsync(vm).ConfigureAwait(false);
            var closed = handover.Elapsed;
            string? error = null;
            try
            {
                await destination.ActivateIncomingAsync(name, CancellationToken.None).ConfigureAwait(false);
                Log.Migration(_log, name, "handed over", $"source ended after {quit.TotalMilliseconds:0} ms, disks closed after " +
                    $"{closed.TotalMilliseconds:0} ms, destination active after {handover.Elapsed.TotalMilliseconds:0} ms");
            }
            catch (Exception e)
            {
                error = $"the VM runs on the destination, but its disks could not be handed over: {e.Message}";
            }
            _vms.TryRemove(name, out _);
            report = report with
            {
                Phase = error is null ? MigrationPhase.Completed : MigrationPhase.Failed,
                HandoverMs = handover.Elapsed.TotalMilliseconds,
                TotalMs = status.TotalTime?.TotalMilliseconds ?? clock.Elapsed.TotalMilliseconds,
                Error = error,
            };
            Log.Migration(_log, name, report.Phase.ToString(), $"downtime {report.DowntimeMs:0} ms, hand-over {report.HandoverMs:0} ms, total {report.TotalMs:0} ms");
            return vm.Migration = report;
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    /// <summary>The report of the migration in progress or last finished on this host for <paramref name="name"/>.</summary>
    public MigrationReport? MigrationOf(string name) => Find(name).Migration;

    private static MigrationReport Progress(MigrationReport report, MigrationStatus status, MigrationPhase phase) => report with
    {
        Phase = phase,
        HypervisorState = status.RawState,
        TotalMs = status.TotalTime?.TotalMilliseconds,
        DowntimeMs = status.Downtime?.TotalMilliseconds ?? report.DowntimeMs,
        RamTransferred = status.RamTransferred,
        RamTotal = status.RamTotal,
    };

    private static async Task AbortRemoteAsync(HostApiClient destination, string name)
    {
        try
        {
            await destination.AbortIncomingAsync(name, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HostException or HttpRequestException or TimeoutException)
        {
            // The destination is gone or never prepared: it holds nothing to give back, and its reservation join expires
            // with the next force-set by whoever runs the VM.
        }
    }

    /// <summary>Destination: joins the disks, exports them pending, creates the TAPs and starts the hypervisor waiting for the VM.</summary>
    public async Task<IncomingVmResponse> PrepareIncomingAsync(IncomingVmRequest request, CancellationToken ct)
    {
        var definition = request.Vm;
        Check(definition);
        if (request.DiskSizes.Count != definition.Disks.Count || request.DiskSizes.Any(s => s <= 0 || s % IBlockDevice.SectorSize != 0))
            throw new HostException("diskSizes must give one positive, sector-aligned size per disk");
        var address = _options.Listen?.Address
            ?? throw new HostException($"{_options.Name} has no management address (--listen) to receive migrations on", 409);
        var vm = new HostedVm(definition, VmRole.Incoming);
        if (!_vms.TryAdd(definition.Name, vm))
            throw HostException.Conflict($"VM '{definition.Name}' already exists on {_options.Name}");
        await vm.Gate.WaitAsync(ct).ConfigureAwait(false);
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

    /// <summary>Destination, once the source closed its mirrors: fences the source, assembles the mirrors, lets the VM's I/O through.</summary>
    public async Task ActivateIncomingAsync(string name, CancellationToken ct)
    {
        var vm = Find(name);
        await vm.Gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (vm.Role != VmRole.Incoming)
                throw HostException.Conflict($"VM '{name}' is not an incoming migration here");
            var clock = Stopwatch.StartNew();
            foreach (var disk in vm.Disks)
            {
                try
                {
                    disk.Path = await disk.Standby!.ActivateAsync(ct).ConfigureAwait(false);
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
            await _driver.FinalizeDestinationAsync(name, succeeded: true, ct).ConfigureAwait(false);
            vm.Role = VmRole.Running;
            Log.Migration(_log, name, "arrived", $"disks assembled in {assembled.TotalMilliseconds:0} ms, VM running after {clock.Elapsed.TotalMilliseconds:0} ms");
        }
        finally
        {
            vm.Gate.Release();
        }
    }

    /// <summary>Destination, when the migration failed: ends the waiting hypervisor and gives the disks' reservations back.</summary>
    public async Task AbortIncomingAsync(string name, CancellationToken ct)
    {
        var vm = Find(name);
        await vm.Gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (vm.Role != VmRole.Incoming)
                throw HostException.Conflict($"VM '{name}' is not an incoming migration here");
            await _driver.FinalizeDestinationAsync(name, succeeded: false, ct).ConfigureAwait(false);
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
