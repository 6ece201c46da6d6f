using XenAoe.Agents.Host;
using XenAoe.Aoe;
using XenAoe.Control.Model;
using XenAoe.Storage;

namespace XenAoe.Control.Jobs;

/// <summary>
/// Moves one leg of a running VM's disk to another disk server: a new volume, swapped into the mirror by its host, filled by a
/// full copy from the staying leg while the VM runs; then the record names it, and the old volume is deleted. Its phases are
/// job steps (place, volume, replace, copy, record, release) under a prefix, so <see cref="DrainDiskServerJob"/> runs several
/// in one job. Only a running VM's leg can be replaced: its host's mirror does the copy.
/// </summary>
public sealed class LegReplacement(JobServices jobs)
{
    private static readonly JobJsonContext Json = JobJsonContext.Default;
    private static readonly TimeSpan CopyPoll = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan CopyProgressInterval = TimeSpan.FromSeconds(3);

    public async Task<string> RunAsync(JobContext job, string vmName, ReplaceLegParameters p, string stepPrefix = "")
    {
        var ct = job.Cancellation;
        var move = await job.StepAsync(stepPrefix + "place", Json.LegMove, () => PlaceAsync(vmName, p, ct)).ConfigureAwait(false);
        var created = await job.StepAsync(stepPrefix + "volume", Json.NewLeg, async () =>
        {
            var server = await jobs.DiskServerAsync(move.ToServer, ct).ConfigureAwait(false);
            var volume = await jobs.EnsureVolumeAsync(server, move.Leaving.Volume, move.SizeBytes, ct).ConfigureAwait(false);
            return new NewLeg(new LegRecord(server.Name, volume.Name, new AoeAddress(volume.Shelf, volume.Slot).ToString()), volume.SizeBytes);
        }).ConfigureAwait(false);
        var newAddress = created.Leg.Address;

        await job.StepAsync(stepPrefix + "replace", async () =>
        {
            var (host, hostName) = await RunningHostAsync(vmName, ct).ConfigureAwait(false);
            var live = await host.GetAsync(vmName, ct).ConfigureAwait(false)
                ?? throw new ControlException($"{vmName} is not on {hostName} (moving?): try again once it runs", 409);
            var disk = live.Disks.FirstOrDefault(d => d.Id == p.Disk) ?? throw new ControlException($"{vmName} on {hostName} has no disk '{p.Disk}'", 409);
            if (disk.Legs.Contains(newAddress))
                return $"{newAddress} already in the mirror on {hostName}";
            if (disk.Legs[move.Index] != move.Leaving.Address)
                throw new ControlException($"{vmName} disk {p.Disk} leg {move.Index} is {disk.Legs[move.Index]} on {hostName}, not {move.Leaving.Address}", 409);
            await host.ReplaceLegAsync(vmName, p.Disk, new ReplaceLegRequest(move.Index, newAddress), ct).ConfigureAwait(false);
            return $"{newAddress} in place of {move.Leaving.Address} on {hostName}; full copy started";
        }).ConfigureAwait(false);

        await job.StepAsync(stepPrefix + "copy", () => WaitForCopyAsync(job, vmName, p.Disk, newAddress, move.ToServer, move.SizeBytes)).ConfigureAwait(false);

        await job.StepAsync(stepPrefix + "record", async () =>
        {
            await jobs.State.UpdateVmAsync(vmName, v => v.Disks.Any(d => d.Id == p.Disk && d.Legs[move.Index] == created.Leg) ? null : v with
            {
                Disks = [.. v.Disks.Select(d => d.Id != p.Disk ? d : d with { Legs = [.. d.Legs.Select((l, i) => i == move.Index ? created.Leg : l)] })],
            }, ct).ConfigureAwait(false);
            return $"leg {move.Index}: {created.Leg.DiskServer}:{created.Leg.Volume} ({newAddress})";
        }).ConfigureAwait(false);

        await job.StepAsync(stepPrefix + "release", async () =>
        {
            var leaving = move.Leaving;
            try
            {
                await jobs.DeleteVolumeAsync(leaving, ct).ConfigureAwait(false);
                return $"{leaving.DiskServer}:{leaving.Volume} deleted";
            }
            catch (Exception e) when (e is HttpRequestException or TimeoutException or StorageException)
            {
                // The leg is out of the mirror and the record: the volume is only space now, left for the operator to delete.
                await job.LogAsync($"{leaving.DiskServer} does not answer ({e.Message}): the old volume {leaving.Volume} is left there; delete it once it is back").ConfigureAwait(false);
                return $"{leaving.DiskServer}:{leaving.Volume} left in place (its server does not answer)";
            }
        }).ConfigureAwait(false);
        return $"{vmName} disk {p.Disk}: leg {move.Index} moved from {move.Leaving.DiskServer} to {move.ToServer} ({newAddress})";
    }

    private async Task<LegMove> PlaceAsync(string vmName, ReplaceLegParameters p, CancellationToken ct)
    {
        var vm = await jobs.VmAsync(vmName, ct).ConfigureAwait(false);
        var disk = vm.Disks.FirstOrDefault(d => d.Id == p.Disk) ?? throw new ControlException($"{vmName} has no disk '{p.Disk}'", 404);
        var which = p.From is { } from ? disk.Legs.ToList().FindIndex(l => l.DiskServer == from) : p.Index
            ?? throw new ControlException("say which leg goes: its disk server (from) or its index");
        if (which < 0)
            throw new ControlException($"{vmName} disk {p.Disk} has no leg on {p.From} (its legs are on {string.Join(" and ", disk.Legs.Select(l => l.DiskServer))})", 409);
        if (which is not (0 or 1))
            throw new ControlException($"leg index must be 0 or 1, not {which}");
        var (leaving, staying) = (disk.Legs[which], disk.Legs[1 - which]);
        if (p.To is { } to)
        {
            if (to == leaving.DiskServer || to == staying.DiskServer)
                throw new ControlException($"{to} already holds a leg of {vmName} disk {p.Disk}: the new leg must go to a third disk server", 409);
            if ((await jobs.DiskServerAsync(to, ct).ConfigureAwait(false)).Draining)
                throw new ControlException($"{to} is draining: it takes no new legs", 409);
            return new LegMove(which, leaving, staying.DiskServer, to, disk.SizeBytes, "as asked");
        }
        var (server, why) = await jobs.Placement.ChooseReplacementLegAsync(disk.SizeBytes, staying.DiskServer, leaving.DiskServer, ct).ConfigureAwait(false);
        return new LegMove(which, leaving, staying.DiskServer, server, disk.SizeBytes, why);
    }

    /// <summary>
    /// Polls the VM's host until the disk is healthy with the new leg in it, logging the copy's progress every
    /// <see cref="CopyProgressInterval"/>. The deadline allows 2 MB/s and ten minutes more: the mirror throttles its resync, and a
    /// busy guest slows it further.
    /// </summary>
    private async Task<string?> WaitForCopyAsync(JobContext job, string vmName, string diskId, string newAddress, string toServer, long size)
    {
        var ct = job.Cancellation;
        var started = jobs.State.Time.GetUtcNow();
        var deadline = started + TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(size / 2_000_000.0);
        var lastLog = started;
        while (true)
        {
            var (host, hostName) = await RunningHostAsync(vmName, ct).ConfigureAwait(false);
            var disk = (await host.GetAsync(vmName, ct).ConfigureAwait(false))?.Disks.FirstOrDefault(d => d.Id == diskId);
            var now = jobs.State.Time.GetUtcNow();
            if (disk is not null && !disk.Legs.Contains(newAddress))
                throw new ControlException($"{newAddress} is no longer a leg of {vmName} disk {diskId} on {hostName} (was the VM restarted?): replace the leg again", 409);
            if (disk is { Health: DiskHealth.Healthy })
                return $"the mirror is healthy: {disk.SizeBytes} bytes copied to {toServer} in {(now - started).TotalSeconds:0.0} s (polled every {CopyPoll.TotalSeconds:0} s)";
            if (now - lastLog >= CopyProgressInterval && disk is not null)
            {
                var percent = disk.ResyncTotalBytes > 0 ? 100.0 * disk.ResyncDoneBytes / disk.ResyncTotalBytes : 0;
                await job.LogAsync($"{vmName}/{diskId} to {toServer}: {percent:0}% copied ({disk.ResyncDoneBytes} of {disk.ResyncTotalBytes} bytes), " +
                    $"mirror {disk.Health.ToString().ToLowerInvariant()}{(disk.Detail is null ? "" : $" ({disk.Detail})")}").ConfigureAwait(false);
                lastLog = now;
            }
            if (now > deadline)
                throw new ControlException($"the copy to {toServer} did not finish in {(now - started).TotalMinutes:0} min (mirror {disk?.Health.ToString().ToLowerInvariant() ?? "not seen"}): the new leg stays in the mirror and keeps copying; run the job again to finish", 504);
            await Task.Delay(CopyPoll, jobs.State.Time, ct).ConfigureAwait(false);
        }
    }

    /// <summary>The agent of the host the VM runs on; a stopped VM is refused (its leg cannot be replaced here).</summary>
    private async Task<(IHostAgent Host, string Name)> RunningHostAsync(string vmName, CancellationToken ct)
    {
        var vm = await jobs.VmAsync(vmName, ct).ConfigureAwait(false);
        var hostName = vm.Host ?? throw new ControlException(
            $"{vmName} is not running: only a running VM's leg can be replaced (its host's mirror copies the data); start it first", 409);
        return (await jobs.HostAgentAsync(hostName, ct).ConfigureAwait(false), hostName);
    }
}
