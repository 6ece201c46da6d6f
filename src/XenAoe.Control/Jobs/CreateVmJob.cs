using XenAoe.Agents.Host;
using XenAoe.Aoe;
using XenAoe.Control.Model;
using XenAoe.Hypervisors;

namespace XenAoe.Control.Jobs;

/// <summary>
/// A new VM: placed (a host, two disk servers in different failure domains), its two root volumes made, its record written,
/// its mirror formatted (and the image written) by its host, then started.
/// </summary>
public sealed class CreateVmJob(JobServices jobs) : Job<CreateVmParameters>(JobKinds.VmCreate)
{
    private static readonly JobJsonContext Json = JobJsonContext.Default;

    protected override async Task<string> RunAsync(CreateVmParameters p, JobContext job)
    {
        var (name, ct) = (job.Target, job.Cancellation);
        var placed = await job.StepAsync("place", Json.VmPlacement, async () =>
        {
            var host = p.Host ?? (await jobs.Placement.ChooseHostAsync(name, p.Cpus, p.MemoryMiB, exclude: [], ct).ConfigureAwait(false)).Name;
            var (first, second, why) = await jobs.Placement.ChooseLegsAsync(p.DiskBytes, ct).ConfigureAwait(false);
            return new VmPlacement(host, first, second, why);
        }).ConfigureAwait(false);

        var mirror = await job.StepAsync("volumes", Json.MirrorLegs, async () =>
        {
            var legs = new List<LegRecord>();
            foreach (var serverName in new[] { placed.Leg0Server, placed.Leg1Server })
            {
                var server = await jobs.DiskServerAsync(serverName, ct).ConfigureAwait(false);
                var volume = await jobs.EnsureVolumeAsync(server, $"{name}-root", p.DiskBytes, ct).ConfigureAwait(false);
                legs.Add(new LegRecord(server.Name, volume.Name, new AoeAddress(volume.Shelf, volume.Slot).ToString()));
            }
            return new MirrorLegs(legs);
        }).ConfigureAwait(false);

        await job.StepAsync("record", async () =>
        {
            var vm = new VmRecord
            {
                Name = name, Uuid = Guid.NewGuid(), Cpus = p.Cpus, MemoryMiB = p.MemoryMiB,
                Boot = new VmBoot(p.Kernel, p.Initrd, p.Cmdline ?? "console=ttyS0 root=/dev/vda"),
                Disks = [new VmDiskRecord("root", p.DiskBytes, mirror.Legs)],
                Macs = p.Mac is { } mac ? [mac] : [],
                VncDisplay = p.VncDisplay,
                Desired = VmDesiredState.Stopped, CreatedAt = jobs.State.Time.GetUtcNow(),
            };
            // A repeated step finds its own record (same legs); any other VM of that name is a conflict.
            if (!await jobs.State.CreateVmAsync(vm, ct).ConfigureAwait(false)
                && (await jobs.State.VmAsync(name, ct).ConfigureAwait(false))?.Disks[0].Legs[0].Address != mirror.Legs[0].Address)
                throw new ControlException($"a VM named {name} already exists", 409);
        }).ConfigureAwait(false);

        await job.StepAsync("format", async () =>
        {
            var host = await jobs.HostAgentAsync(placed.Host, ct).ConfigureAwait(false);
            var result = await host.FormatDiskAsync(new FormatDiskRequest([.. mirror.Legs.Select(l => l.Address)], p.Image), ct).ConfigureAwait(false);
            return $"mirror of {result.SizeBytes} bytes, {result.ImageBytes} bytes of image written to both legs";
        }).ConfigureAwait(false);

        await job.StepAsync("start", () => jobs.StartOnAsync(name, placed.Host, takeOver: false, ct)).ConfigureAwait(false);
        return $"{name} created and running on {placed.Host}";
    }
}
