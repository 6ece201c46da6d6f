using System.Globalization;
using XenAoe.Agents.Host;
using XenAoe.Aoe;
using XenAoe.Control.Model;
using XenAoe.Hypervisors;
using XenAoe.Storage;

namespace XenAoe.Control.Jobs;

/// <summary>
/// What each kind of job does, step by step, against the host and disk daemons. Steps are safe to repeat: each checks what is
/// already done (a volume that exists, a VM that already runs on the chosen host) before acting.
/// </summary>
public sealed class Operations(ControllerState state, Placement placement, AgentClients agents)
{
    public static readonly IReadOnlyList<string> Kinds =
        ["vm-create", "vm-start", "vm-stop", "vm-reboot", "vm-migrate", "vm-failover", "vm-delete", "vm-replace-leg", "host-evacuate", "disk-drain"];

    private static readonly TimeSpan AgentTimeout = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan CopyPoll = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan CopyProgressInterval = TimeSpan.FromSeconds(3);

    /// <summary>Runs one job; returns a one-line summary for its log, or throws with the reason it failed.</summary>
    public Task<string> RunAsync(string kind, JobContext job) => kind switch
    {
        "vm-create" => CreateAsync(job),
        "vm-start" => StartAsync(job),
        "vm-stop" => StopAsync(job),
        "vm-reboot" => RebootAsync(job),
        "vm-migrate" => MigrateAsync(job),
        "vm-failover" => FailoverAsync(job),
        "vm-delete" => DeleteAsync(job),
        "vm-replace-leg" => ReplaceLegJobAsync(job),
        "host-evacuate" => EvacuateAsync(job),
        "disk-drain" => DrainAsync(job),
        _ => throw new ControlException($"unknown job kind '{kind}' (known: {string.Join(", ", Kinds)})"),
    };

    private async Task<string> CreateAsync(JobContext job)
    {
        var name = job.Target;
        var cpus = int.Parse(job.RequiredParameter("cpus"), CultureInfo.InvariantCulture);
        var memory = int.Parse(job.RequiredParameter("memoryMiB"), CultureInfo.InvariantCulture);
        var diskBytes = long.Parse(job.RequiredParameter("diskBytes"), CultureInfo.InvariantCulture);
        await job.StepAsync("place", async () =>
        {
            var host = job.Parameter("host") ?? (await placement.ChooseHostAsync(name, cpus, memory, exclude: [], job.Cancellation).ConfigureAwait(false)).Name;
            var (first, second, why) = await placement.ChooseLegsAsync(diskBytes, job.Cancellation).ConfigureAwait(false);
            await job.RememberAsync("host", host).ConfigureAwait(false);
            await job.RememberAsync("leg0Server", first).ConfigureAwait(false);
            await job.RememberAsync("leg1Server", second).ConfigureAwait(false);
            return $"on {host}; legs on {first} and {second} ({why})";
        }).ConfigureAwait(false);

        await job.StepAsync("volumes", async () =>
        {
            var legs = new List<string>();
            foreach (var which in new[] { "leg0", "leg1" })
            {
                var server = await DiskServerAsync(job.RequiredParameter($"{which}Server"), job.Cancellation).ConfigureAwait(false);
                var volume = await EnsureVolumeAsync(server, $"{name}-root", diskBytes, job.Cancellation).ConfigureAwait(false);
                var address = new AoeAddress(volume.Shelf, volume.Slot).ToString();
                await job.RememberAsync($"{which}Address", address).ConfigureAwait(false);
                legs.Add($"{server.Name}:{volume.Name} ({address})");
            }
            return string.Join(" + ", legs);
        }).ConfigureAwait(false);

        await job.StepAsync("record", async () =>
        {
            var vm = new VmRecord
            {
                Name = name, Uuid = Guid.NewGuid(), Cpus = cpus, MemoryMiB = memory,
                Boot = new VmBoot(job.RequiredParameter("kernel"), job.Parameter("initrd"), job.Parameter("cmdline") ?? "console=ttyS0 root=/dev/vda"),
                Disks = [new VmDiskRecord("root", diskBytes,
                [
                    new LegRecord(job.RequiredParameter("leg0Server"), $"{name}-root", job.RequiredParameter("leg0Address")),
                    new LegRecord(job.RequiredParameter("leg1Server"), $"{name}-root", job.RequiredParameter("leg1Address")),
                ])],
                Macs = job.Parameter("mac") is { } mac ? [mac] : [],
                VncDisplay = job.Parameter("vncDisplay") is { } display ? int.Parse(display, CultureInfo.InvariantCulture) : null,
                Desired = VmDesiredState.Stopped, CreatedAt = state.Time.GetUtcNow(),
            };
            if (!await state.CreateVmAsync(vm, job.Cancellation).ConfigureAwait(false) && (await state.VmAsync(name, job.Cancellation).ConfigureAwait(false))?.Disks[0].Legs[0].Address != vm.Disks[0].Legs[0].Address)
                throw new ControlException($"a VM named {name} already exists", 409);
        }).ConfigureAwait(false);

        var hostName = job.RequiredParameter("host");
        await job.StepAsync("format", async () =>
        {
            var host = await HostAsync(hostName, job.Cancellation).ConfigureAwait(false);
            using var client = agents.Host(host.ApiUrl, AgentTimeout);
            var result = await client.FormatDiskAsync(new FormatDiskRequest([job.RequiredParameter("leg0Address"), job.RequiredParameter("leg1Address")],
                job.Parameter("image")), job.Cancellation).ConfigureAwait(false);
            return $"mirror of {result.SizeBytes} bytes, {result.ImageBytes} bytes of image written to both legs";
        }).ConfigureAwait(false);

        await job.StepAsync("start", () => StartOnAsync(name, hostName, takeOver: false, job.Cancellation)).ConfigureAwait(false);
        return $"{name} created and running on {hostName}";
    }

    private async Task<string> StartAsync(JobContext job)
    {
        var vm = await VmAsync(job.Target, job.Cancellation).ConfigureAwait(false);
        await job.StepAsync("place", async () =>
        {
            var current = vm.Host is { } h ? await state.HostAsync(h, job.Cancellation).ConfigureAwait(false) : null;
            var host = current is { State: HostState.Up } ? current.Name
                : (await placement.ChooseHostAsync(vm.Name, vm.Cpus, vm.MemoryMiB, exclude: [], job.Cancellation).ConfigureAwait(false)).Name;
            await job.RememberAsync("host", host).ConfigureAwait(false);
            return host;
        }).ConfigureAwait(false);
        var hostName = job.RequiredParameter("host");
        await job.StepAsync("start", () => StartOnAsync(vm.Name, hostName, takeOver: false, job.Cancellation)).ConfigureAwait(false);
        return $"{vm.Name} running on {hostName}";
    }

    private async Task<string> StopAsync(JobContext job)
    {
        var vm = await VmAsync(job.Target, job.Cancellation).ConfigureAwait(false);
        await job.StepAsync("stop", async () =>
        {
            await StopOnHostAsync(vm, job.Parameter("force") == "true", job.Cancellation).ConfigureAwait(false);
            await state.UpdateVmAsync(vm.Name, v => v with { Desired = VmDesiredState.Stopped, Host = null }, job.Cancellation).ConfigureAwait(false);
        }).ConfigureAwait(false);
        return $"{vm.Name} stopped";
    }

    private async Task<string> RebootAsync(JobContext job)
    {
        var vm = await VmAsync(job.Target, job.Cancellation).ConfigureAwait(false);
        var host = await HostAsync(vm.Host ?? throw new ControlException($"{vm.Name} is not running", 409), job.Cancellation).ConfigureAwait(false);
        await job.StepAsync("reboot", async () =>
        {
            using var client = agents.Host(host.ApiUrl, AgentTimeout);
            await client.RebootAsync(vm.Name, job.Cancellation).ConfigureAwait(false);
        }).ConfigureAwait(false);
        return $"{vm.Name} reset on {host.Name}";
    }

    private async Task<string> MigrateAsync(JobContext job)
    {
        var vm = await VmAsync(job.Target, job.Cancellation).ConfigureAwait(false);
        var from = vm.Host ?? throw new ControlException($"{vm.Name} is not running: start it instead", 409);
        await job.StepAsync("place", async () =>
        {
            var to = job.Parameter("to") ?? (await placement.ChooseHostAsync(vm.Name, vm.Cpus, vm.MemoryMiB, exclude: [from], job.Cancellation).ConfigureAwait(false)).Name;
            if (to == from)
                throw new ControlException($"{vm.Name} already runs on {to}", 409);
            await job.RememberAsync("to", to).ConfigureAwait(false);
            await job.RememberAsync("from", from).ConfigureAwait(false);
            return $"{from} -> {to}";
        }).ConfigureAwait(false);
        var target = job.RequiredParameter("to");
        await job.StepAsync("migrate", () => MigrateOneAsync(vm.Name, job.RequiredParameter("from"), target, job.Cancellation, job)).ConfigureAwait(false);
        return $"{vm.Name} migrated to {target}";
    }

    /// <summary>
    /// Restarts a VM whose host is dead: a new host first, then the fence (both disk servers force-set every leg's reservation
    /// to the new host's MACs, so the old host, if it was only frozen or cut off, is refused from then on), then the start.
    /// </summary>
    private async Task<string> FailoverAsync(JobContext job)
    {
        var vm = await VmAsync(job.Target, job.Cancellation).ConfigureAwait(false);
        var dead = job.Parameter("from") ?? vm.Host;
        await job.StepAsync("place", async () =>
        {
            // A failover spends the N+1 headroom it was kept for: the VM runs again even if that leaves none.
            var choice = await placement.ChooseHostAsync(vm.Name, vm.Cpus, vm.MemoryMiB, exclude: dead is null ? [] : [dead], job.Cancellation,
                allowBreakingNPlusOne: true).ConfigureAwait(false);
            await job.RememberAsync("host", choice.Name).ConfigureAwait(false);
            return $"from {dead ?? "nowhere"} to {choice.Name}{choice.Note}";
        }).ConfigureAwait(false);
        var hostName = job.RequiredParameter("host");
        await job.StepAsync("fence", async () =>
        {
            var host = await HostAsync(hostName, job.Cancellation).ConfigureAwait(false);
            var macs = host.StorageMacs.Select(MacAddress.Parse).ToArray();
            if (macs.Length == 0)
                throw new ControlException($"{hostName} reported no storage NIC MACs: cannot fence for it");
            var fenced = new List<string>();
            foreach (var leg in vm.Disks.SelectMany(d => d.Legs))
            {
                try
                {
                    var server = await DiskServerAsync(leg.DiskServer, job.Cancellation).ConfigureAwait(false);
                    using var disk = agents.Disk(server.ApiUrl);
                    await disk.SetReservationAsync(leg.Volume, macs, job.Cancellation).ConfigureAwait(false);
                    fenced.Add($"{leg.DiskServer}:{leg.Volume}");
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException or StorageException)
                {
                    // A disk server that is down cannot be fenced now: the fence is owed and paid by the heartbeat monitor the
                    // moment the server answers again; until then the new host's mirror runs without that leg.
                    await state.UpdateDiskServerAsync(leg.DiskServer, d => d.PendingFences.Any(f => f.Vm == vm.Name && f.Volume == leg.Volume) ? null
                        : d with { PendingFences = [.. d.PendingFences, new PendingFence(vm.Name, leg.Volume)] }, job.Cancellation).ConfigureAwait(false);
                    await job.LogAsync($"could not fence {leg.DiskServer}:{leg.Volume} ({e.Message}); the fence is applied when {leg.DiskServer} answers again").ConfigureAwait(false);
                }
            }
            if (fenced.Count == 0)
                throw new ControlException($"no disk server of {vm.Name} could be fenced: not restarting it, the old host might still write");
            return $"reservations set to {hostName} ({string.Join(", ", host.StorageMacs)}) on {string.Join(", ", fenced)}";
        }).ConfigureAwait(false);
        await job.StepAsync("start", () => StartOnAsync(vm.Name, hostName, takeOver: true, job.Cancellation)).ConfigureAwait(false);
        return $"{vm.Name} restarted on {hostName}{(dead is null ? "" : $" after {dead} died")}";
    }

    private async Task<string> DeleteAsync(JobContext job)
    {
        var vm = await VmAsync(job.Target, job.Cancellation).ConfigureAwait(false);
        await job.StepAsync("stop", () => StopOnHostAsync(vm, force: true, job.Cancellation)).ConfigureAwait(false);
        await job.StepAsync("volumes", async () =>
        {
            foreach (var leg in vm.Disks.SelectMany(d => d.Legs))
            {
                var server = await DiskServerAsync(leg.DiskServer, job.Cancellation).ConfigureAwait(false);
                using var disk = agents.Disk(server.ApiUrl);
                try
                {
                    await disk.DeleteAsync(leg.Volume, force: true, job.Cancellation).ConfigureAwait(false);
                }
                catch (StorageException e) when (e.Error == StorageError.NotFound)
                {
                    // Already gone (a repeated step).
                }
            }
        }).ConfigureAwait(false);
        await job.StepAsync("record", () => state.DeleteVmAsync(vm.Name, job.Cancellation)).ConfigureAwait(false);
        return $"{vm.Name} deleted with its volumes";
    }

    /// <summary>Live-migrates everything off a host and leaves it in maintenance (nothing new is placed there).</summary>
    private async Task<string> EvacuateAsync(JobContext job)
    {
        var hostName = job.Target;
        await job.StepAsync("maintenance", async () =>
        {
            if (await state.UpdateHostAsync(hostName, h => h with { State = HostState.Maintenance, StateReason = $"evacuated by job {job.Id}" }, job.Cancellation).ConfigureAwait(false) is null)
                throw new ControlException($"no host named {hostName}", 404);
        }).ConfigureAwait(false);
        var moved = 0;
        foreach (var vm in (await state.VmsAsync(job.Cancellation).ConfigureAwait(false)).Where(v => v.Host == hostName))
        {
            await job.StepAsync($"migrate {vm.Name}", async () =>
            {
                // Maintenance is the operator's call: a cluster too small to keep N+1 without this host still gets emptied, and
                // the job says that N+1 is not kept meanwhile.
                var to = job.Parameter($"to:{vm.Name}");
                var note = "";
                if (to is null)
                {
                    var choice = await placement.ChooseHostAsync(vm.Name, vm.Cpus, vm.MemoryMiB, exclude: [hostName], job.Cancellation, allowBreakingNPlusOne: true).ConfigureAwait(false);
                    (to, note) = (choice.Name, choice.Note);
                    await job.RememberAsync($"to:{vm.Name}", to).ConfigureAwait(false);
                }
                return $"to {to}{note}: {await MigrateOneAsync(vm.Name, hostName, to, job.Cancellation).ConfigureAwait(false)}";
            }).ConfigureAwait(false);
            moved++;
        }
        return $"{hostName} evacuated ({moved} VMs moved) and in maintenance";
    }

    /// <summary>
    /// Moves one leg of a running VM's disk to another disk server: a new volume, swapped into the mirror by its host, filled by a
    /// full copy from the staying leg while the VM runs; then the record names it, and the old volume is deleted.
    /// </summary>
    private async Task<string> ReplaceLegJobAsync(JobContext job)
    {
        var index = job.Parameter("index") is { } i ? int.Parse(i, CultureInfo.InvariantCulture) : (int?)null;
        return await ReplaceLegAsync(job, job.Target, job.Parameter("disk") ?? "root", job.Parameter("from"), index, job.Parameter("to"), key: "",
            job.StepAsync).ConfigureAwait(false);
    }

    /// <summary>
    /// Marks a disk server draining (no new legs go there), then moves every VM disk leg off it, one after the other. The VM disks
    /// are listed once and remembered, so a resumed drain finishes (and releases) a leg whose record already moved.
    /// </summary>
    private async Task<string> DrainAsync(JobContext job)
    {
        var serverName = job.Target;
        await job.StepAsync("drain", async () =>
        {
            if (await state.UpdateDiskServerAsync(serverName, d => d with { Draining = true }, job.Cancellation).ConfigureAwait(false) is null)
                throw new ControlException($"no disk server named {serverName}", 404);
            var disks = (await state.VmsAsync(job.Cancellation).ConfigureAwait(false))
                .SelectMany(v => v.Disks.Where(d => d.Legs.Any(l => l.DiskServer == serverName)).Select(d => $"{v.Name}/{d.Id}")).ToList();
            await job.RememberAsync("disks", string.Join(",", disks)).ConfigureAwait(false);
            return disks.Count == 0 ? "draining; no VM disk has a leg here" : $"draining; {disks.Count} legs to move: {string.Join(", ", disks)}";
        }).ConfigureAwait(false);
        var moved = job.RequiredParameter("disks").Split(',', StringSplitOptions.RemoveEmptyEntries);
        foreach (var item in moved)
        {
            var (vm, disk) = (item[..item.IndexOf('/', StringComparison.Ordinal)], item[(item.IndexOf('/', StringComparison.Ordinal) + 1)..]);
            var key = $"{item}:";
            await job.StepAsync($"replace-leg {item}", async () => await ReplaceLegAsync(job, vm, disk, serverName, index: null, to: null, key, async (phase, body) =>
            {
                // One job step per VM disk; its phases are remembered one by one so a resumed drain does not redo them.
                if (job.Parameter($"{key}{phase}") == "done")
                    return;
                var detail = await body().ConfigureAwait(false);
                await job.LogAsync($"{item} {phase}{(detail is null ? "" : $": {detail}")}").ConfigureAwait(false);
                await job.RememberAsync($"{key}{phase}", "done").ConfigureAwait(false);
            }).ConfigureAwait(false)).ConfigureAwait(false);
        }
        return $"{serverName} drained ({moved.Length} legs moved off it) and takes no new legs";
    }

    /// <summary>
    /// The phases of a leg replacement (place, volume, replace, copy, record, release), each run through <paramref name="phase"/>:
    /// job steps for <c>vm-replace-leg</c>, parts of one step for <c>disk-drain</c>. Decisions are remembered under
    /// <paramref name="key"/> so a resumed job makes the same ones. Only a running VM's leg can be replaced: its host's mirror
    /// does the copy.
    /// </summary>
    private async Task<string> ReplaceLegAsync(JobContext job, string vmName, string diskId, string? from, int? index, string? to, string key,
        Func<string, Func<Task<string?>>, Task> phase)
    {
        var ct = job.Cancellation;
        string Remembered(string name) => job.RequiredParameter(key + name);
        await phase("place", async () =>
        {
            var vm = await VmAsync(vmName, ct).ConfigureAwait(false);
            var disk = vm.Disks.FirstOrDefault(d => d.Id == diskId) ?? throw new ControlException($"{vmName} has no disk '{diskId}'", 404);
            var which = from is not null ? IndexOf(disk, from) : index ?? throw new ControlException("say which leg goes: its disk server (from) or its index");
            if (which is not (0 or 1))
                throw new ControlException($"leg index must be 0 or 1, not {which}");
            var (leaving, staying) = (disk.Legs[which], disk.Legs[1 - which]);
            string server, why;
            if (to is not null)
            {
                if (to == leaving.DiskServer || to == staying.DiskServer)
                    throw new ControlException($"{to} already holds a leg of {vmName} disk {diskId}: the new leg must go to a third disk server", 409);
                if ((await DiskServerAsync(to, ct).ConfigureAwait(false)).Draining)
                    throw new ControlException($"{to} is draining: it takes no new legs", 409);
                (server, why) = (to, "as asked");
            }
            else
            {
                (server, why) = await placement.ChooseReplacementLegAsync(disk.SizeBytes, staying.DiskServer, leaving.DiskServer, ct).ConfigureAwait(false);
            }
            foreach (var (name, value) in new[]
            {
                ("index", which.ToString(CultureInfo.InvariantCulture)), ("fromServer", leaving.DiskServer), ("fromVolume", leaving.Volume),
                ("fromAddress", leaving.Address), ("toServer", server), ("sizeBytes", disk.SizeBytes.ToString(CultureInfo.InvariantCulture)),
            })
            {
                await job.RememberAsync(key + name, value).ConfigureAwait(false);
            }
            return $"leg {which} on {leaving.DiskServer}:{leaving.Volume} ({leaving.Address}) goes to {server} ({why}); {staying.DiskServer} stays";
        }).ConfigureAwait(false);
        var legIndex = int.Parse(Remembered("index"), CultureInfo.InvariantCulture);
        var size = long.Parse(Remembered("sizeBytes"), CultureInfo.InvariantCulture);

        await phase("volume", async () =>
        {
            var server = await DiskServerAsync(Remembered("toServer"), ct).ConfigureAwait(false);
            var volume = await EnsureVolumeAsync(server, Remembered("fromVolume"), size, ct).ConfigureAwait(false);
            var address = new AoeAddress(volume.Shelf, volume.Slot).ToString();
            await job.RememberAsync(key + "toVolume", volume.Name).ConfigureAwait(false);
            await job.RememberAsync(key + "toAddress", address).ConfigureAwait(false);
            return $"{server.Name}:{volume.Name} ({address}), {volume.SizeBytes} bytes";
        }).ConfigureAwait(false);
        var newAddress = Remembered("toAddress");

        await phase("replace", async () =>
        {
            var (client, hostName) = await RunningHostAsync(vmName, ct).ConfigureAwait(false);
            using (client)
            {
                var live = await client.GetAsync(vmName, ct).ConfigureAwait(false)
                    ?? throw new ControlException($"{vmName} is not on {hostName} (moving?): try again once it runs", 409);
                var disk = live.Disks.FirstOrDefault(d => d.Id == diskId) ?? throw new ControlException($"{vmName} on {hostName} has no disk '{diskId}'", 409);
                if (disk.Legs.Contains(newAddress))
                    return $"{newAddress} already in the mirror on {hostName}";
                if (disk.Legs[legIndex] != Remembered("fromAddress"))
                    throw new ControlException($"{vmName} disk {diskId} leg {legIndex} is {disk.Legs[legIndex]} on {hostName}, not {Remembered("fromAddress")}", 409);
                await client.ReplaceLegAsync(vmName, diskId, new ReplaceLegRequest(legIndex, newAddress), ct).ConfigureAwait(false);
                return $"{newAddress} in place of {Remembered("fromAddress")} on {hostName}; full copy started";
            }
        }).ConfigureAwait(false);

        await phase("copy", () => WaitForCopyAsync(job, vmName, diskId, newAddress, Remembered("toServer"), size));

        await phase("record", async () =>
        {
            var leg = new LegRecord(Remembered("toServer"), Remembered("toVolume"), newAddress);
            await state.UpdateVmAsync(vmName, v => v.Disks.Any(d => d.Id == diskId && d.Legs[legIndex] == leg) ? null : v with
            {
                Disks = [.. v.Disks.Select(d => d.Id != diskId ? d : d with { Legs = [.. d.Legs.Select((l, i) => i == legIndex ? leg : l)] })],
            }, ct).ConfigureAwait(false);
            return $"leg {legIndex}: {leg.DiskServer}:{leg.Volume} ({leg.Address})";
        }).ConfigureAwait(false);

        await phase("release", async () =>
        {
            var (serverName, volume) = (Remembered("fromServer"), Remembered("fromVolume"));
            try
            {
                var server = await DiskServerAsync(serverName, ct).ConfigureAwait(false);
                using var disk = agents.Disk(server.ApiUrl);
                await disk.DeleteAsync(volume, force: true, ct).ConfigureAwait(false);
                return $"{serverName}:{volume} deleted";
            }
            catch (StorageException e) when (e.Error == StorageError.NotFound)
            {
                return $"{serverName}:{volume} already gone";
            }
            catch (Exception e) when (e is HttpRequestException or StorageException || (e is TaskCanceledException && !ct.IsCancellationRequested))
            {
                // The leg is out of the mirror and the record: the volume is only space now, left for the operator to delete.
                await job.LogAsync($"{serverName} does not answer ({e.Message}): the old volume {volume} is left there; delete it once it is back").ConfigureAwait(false);
                return $"{serverName}:{volume} left in place (its server does not answer)";
            }
        }).ConfigureAwait(false);
        return $"{vmName} disk {diskId}: leg {legIndex} moved from {Remembered("fromServer")} to {Remembered("toServer")} ({newAddress})";

        int IndexOf(VmDiskRecord disk, string server)
        {
            var i = disk.Legs.ToList().FindIndex(l => l.DiskServer == server);
            return i >= 0 ? i : throw new ControlException(
                $"{vmName} disk {diskId} has no leg on {server} (its legs are on {string.Join(" and ", disk.Legs.Select(l => l.DiskServer))})", 409);
        }
    }

    /// <summary>
    /// Polls the VM's host until the disk is healthy with the new leg in it, logging the copy's progress every
    /// <see cref="CopyProgressInterval"/>. The deadline allows 2 MB/s and ten minutes more: the mirror throttles its resync, and a
    /// busy guest slows it further.
    /// </summary>
    private async Task<string?> WaitForCopyAsync(JobContext job, string vmName, string diskId, string newAddress, string toServer, long size)
    {
        var ct = job.Cancellation;
        var started = state.Time.GetUtcNow();
        var deadline = started + TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(size / 2_000_000.0);
        var lastLog = started;
        while (true)
        {
            var (client, hostName) = await RunningHostAsync(vmName, ct).ConfigureAwait(false);
            VmDiskStatus? disk;
            using (client)
                disk = (await client.GetAsync(vmName, ct).ConfigureAwait(false))?.Disks.FirstOrDefault(d => d.Id == diskId);
            var now = state.Time.GetUtcNow();
            if (disk is not null && !disk.Legs.Contains(newAddress))
                throw new ControlException($"{newAddress} is no longer a leg of {vmName} disk {diskId} on {hostName} (was the VM restarted?): replace the leg again", 409);
            if (disk is { Health: "healthy" })
                return $"the mirror is healthy: {disk.SizeBytes} bytes copied to {toServer} in {(now - started).TotalSeconds:0.0} s (polled every {CopyPoll.TotalSeconds:0} s)";
            if (now - lastLog >= CopyProgressInterval && disk is not null)
            {
                var percent = disk.ResyncTotalBytes > 0 ? 100.0 * disk.ResyncDoneBytes / disk.ResyncTotalBytes : 0;
                await job.LogAsync($"{vmName}/{diskId} to {toServer}: {percent:0}% copied ({disk.ResyncDoneBytes} of {disk.ResyncTotalBytes} bytes), " +
                    $"mirror {disk.Health}{(disk.Detail is null ? "" : $" ({disk.Detail})")}").ConfigureAwait(false);
                lastLog = now;
            }
            if (now > deadline)
                throw new ControlException($"the copy to {toServer} did not finish in {(now - started).TotalMinutes:0} min (mirror {disk?.Health ?? "not seen"}): the new leg stays in the mirror and keeps copying; run the job again to finish", 504);
            await Task.Delay(CopyPoll, state.Time, ct).ConfigureAwait(false);
        }
    }

    /// <summary>A client for the host the VM runs on; a stopped VM is refused (its leg cannot be replaced here).</summary>
    private async Task<(HostApiClient Client, string Host)> RunningHostAsync(string vmName, CancellationToken ct)
    {
        var vm = await VmAsync(vmName, ct).ConfigureAwait(false);
        var hostName = vm.Host ?? throw new ControlException(
            $"{vmName} is not running: only a running VM's leg can be replaced (its host's mirror copies the data); start it first", 409);
        var host = await HostAsync(hostName, ct).ConfigureAwait(false);
        return (agents.Host(host.ApiUrl, AgentTimeout), hostName);
    }

    /// <summary>Moves one VM; with <paramref name="job"/>, its figures (milliseconds) are kept as the job's parameters.</summary>
    private async Task<string?> MigrateOneAsync(string name, string from, string to, CancellationToken ct, JobContext? job = null)
    {
        var (source, destination) = (await HostAsync(from, ct).ConfigureAwait(false), await HostAsync(to, ct).ConfigureAwait(false));
        using var destinationClient = agents.Host(destination.ApiUrl, AgentTimeout);
        if (await destinationClient.GetAsync(name, ct).ConfigureAwait(false) is { Role: "running" })
        {
            // A repeated step: the migration finished before the controller recorded it.
            await state.UpdateVmAsync(name, v => v with { Host = to }, ct).ConfigureAwait(false);
            return $"already on {to}";
        }
        using var sourceClient = agents.Host(source.ApiUrl, AgentTimeout);
        var report = await sourceClient.MigrateAsync(name, new MigrateVmRequest(destination.ApiUrl), ct).ConfigureAwait(false);
        if (report.Phase != "completed")
            throw new ControlException($"migration of {name} to {to} failed: {report.Error}", 409);
        await state.UpdateVmAsync(name, v => v with { Host = to, Desired = VmDesiredState.Running }, ct).ConfigureAwait(false);
        if (job is not null)
        {
            foreach (var (key, value) in new[] { ("totalMs", report.TotalMs), ("downtimeMs", report.DowntimeMs), ("handoverMs", report.HandoverMs) })
            {
                if (value is { } ms)
                    await job.RememberAsync(key, ms.ToString("0", CultureInfo.InvariantCulture)).ConfigureAwait(false);
            }
        }
        return $"total {report.TotalMs:0} ms, downtime {report.DowntimeMs:0} ms, disk hand-over {report.HandoverMs:0} ms";
    }

    private async Task<string?> StartOnAsync(string name, string hostName, bool takeOver, CancellationToken ct)
    {
        var vm = await VmAsync(name, ct).ConfigureAwait(false);
        var host = await HostAsync(hostName, ct).ConfigureAwait(false);
        using var client = agents.Host(host.ApiUrl, AgentTimeout);
        if (await client.GetAsync(name, ct).ConfigureAwait(false) is not { Role: "running" })
            await client.StartAsync(new StartVmRequest(Definition(vm), TakeOver: takeOver, AllowDegraded: takeOver), ct).ConfigureAwait(false);
        await state.UpdateVmAsync(name, v => v with { Host = hostName, Desired = VmDesiredState.Running }, ct).ConfigureAwait(false);
        return $"running on {hostName}";
    }

    private async Task StopOnHostAsync(VmRecord vm, bool force, CancellationToken ct)
    {
        if (vm.Host is null || await state.HostAsync(vm.Host, ct).ConfigureAwait(false) is not { } host)
            return;
        using var client = agents.Host(host.ApiUrl, AgentTimeout);
        if (await client.GetAsync(vm.Name, ct).ConfigureAwait(false) is null)
            return;
        if (force)
            await client.KillAsync(vm.Name, ct).ConfigureAwait(false);
        else
            await client.StopAsync(vm.Name, ct: ct).ConfigureAwait(false);
    }

    /// <summary>The volume named <paramref name="name"/> on the server, created in its shelf's lowest free slot when missing.</summary>
    private async Task<VolumeSpec> EnsureVolumeAsync(DiskServerRecord server, string name, long sizeBytes, CancellationToken ct)
    {
        using var disk = agents.Disk(server.ApiUrl);
        var volumes = await disk.ListAsync(ct).ConfigureAwait(false);
        if (volumes.FirstOrDefault(v => v.Name == name) is { } existing)
            return existing;
        var used = volumes.Where(v => v.Shelf == server.Shelf).Select(v => (int)v.Slot).ToHashSet();
        var slot = Enumerable.Range(0, 255).FirstOrDefault(s => !used.Contains(s), -1);
        if (slot < 0)
            throw new ControlException($"{server.Name} has no free slot on shelf {server.Shelf}", 409);
        return await disk.CreateAsync(new VolumeSpec { Name = name, Shelf = server.Shelf, Slot = (byte)slot, SizeBytes = sizeBytes }, ct).ConfigureAwait(false);
    }

    public static VmDefinition Definition(VmRecord vm) => new(vm.Name, vm.Uuid, vm.Cpus, vm.MemoryMiB, vm.Boot,
        [.. vm.Disks.Select(d => new VmDiskDefinition(d.Id, [.. d.Legs.Select(l => l.Address)]))],
        [.. vm.Macs.Select((mac, i) => new VmNicDefinition($"eth{i}", mac))],
        vm.VncDisplay);

    private async Task<VmRecord> VmAsync(string name, CancellationToken ct) =>
        await state.VmAsync(name, ct).ConfigureAwait(false) ?? throw new ControlException($"no VM named {name}", 404);

    private async Task<HostRecord> HostAsync(string name, CancellationToken ct) =>
        await state.HostAsync(name, ct).ConfigureAwait(false) ?? throw new ControlException($"no host named {name}", 404);

    private async Task<DiskServerRecord> DiskServerAsync(string name, CancellationToken ct) =>
        await state.DiskServerAsync(name, ct).ConfigureAwait(false) ?? throw new ControlException($"no disk server named {name}", 404);
}
