using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using XenAoe.Agents.Host;
using XenAoe.Control.Api;
using XenAoe.Control.Model;

namespace XenAoe.Cli;

/// <summary>
/// <c>xenaoe vm ...</c>: VMs through the controller, every operation a job followed to its end; and <c>xenaoe console</c>,
/// which attaches to the serial console on the VM's host.
/// </summary>
internal static class VmCommands
{
    private static readonly Option<string[]> Hosts = new("--host") { Description = "Host daemon socket or URL (repeat); default: $XENAOE_HOSTS, else the lab's hosts" };
    private static readonly Option<bool> Json = new("--json") { Description = "Print JSON instead of a table" };
    private static readonly Option<bool> NoWait = new("--no-wait") { Description = "Submit the job and print its id without following it" };
    private static readonly Argument<string> Name = new("name") { Description = "VM name" };

    public static Command Build()
    {
        var vm = new Command("vm", "Create, run, stop, migrate and fail over VMs (through the controller; each operation is a job)");
        vm.Subcommands.Add(List());
        vm.Subcommands.Add(Show());
        vm.Subcommands.Add(Create());
        vm.Subcommands.Add(Operation("start", "Start a stopped VM (the scheduler picks a host)", (c, n, _, ct) => c.VmOperationAsync(n, "start", ct: ct)));
        vm.Subcommands.Add(Operation("stop", "Power the guest off (ACPI; forced after a grace time) and release its disks", (c, n, _, ct) => c.StopAsync(n, force: false, ct)));
        vm.Subcommands.Add(Operation("kill", "Force the VM off at once and release its disks", (c, n, _, ct) => c.StopAsync(n, force: true, ct)));
        vm.Subcommands.Add(Operation("reboot", "Hard-reset the VM", (c, n, _, ct) => c.VmOperationAsync(n, "reboot", ct: ct)));
        vm.Subcommands.Add(Operation("failover", "Restart the VM on another host after fencing its current one at the storage (its host must be dead)",
            (c, n, _, ct) => c.VmOperationAsync(n, "failover", ct: ct)));
        vm.Subcommands.Add(Operation("delete", "Stop the VM and delete it with its volumes", (c, n, _, ct) => c.DeleteVmAsync(n, ct)));
        var to = new Option<string>("--to") { Description = "Destination host (default: the scheduler's choice)" };
        vm.Subcommands.Add(Operation("migrate", "Live-migrate the VM while it runs; its disks are handed over and the source fenced",
            (c, n, parse, ct) => c.MigrateAsync(n, parse.GetValue(to), ct), to));
        var from = new Option<string>("--from") { Description = "Disk server whose leg goes", Required = true };
        var toDisk = new Option<string>("--to") { Description = "Disk server for the new leg (default: the scheduler's choice, not either current one)" };
        var diskId = new Option<string>("--disk") { Description = "Which disk of the VM", DefaultValueFactory = _ => "root" };
        vm.Subcommands.Add(Operation("replace-leg", "Move one leg of a running VM's disk to another disk server: a full copy while the VM runs, then the old volume is deleted",
            (c, n, parse, ct) => c.ReplaceLegAsync(n, parse.GetValue(diskId)!, new ReplaceVmLegRequest(parse.GetValue(from), parse.GetValue(toDisk)), ct),
            from, toDisk, diskId));
        return vm;
    }

    public static Command Console() => SerialConsole.Build(Hosts);

    private static Command List()
    {
        var command = new Command("list", "Every VM: where it runs, what it should be doing, its disks") { ControllerConnection.Urls, ControllerConnection.Token, Json };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            var vms = await client.VmsAsync(ct);
            if (parse.GetValue(Json))
            {
                System.Console.WriteLine(JsonSerializer.Serialize(vms, ApiJsonContext.Default.IReadOnlyListVmRecord));
                return;
            }
            Table.Write(System.Console.Out, ["NAME", "HOST", "DESIRED", "CPUS", "MEMORY", "DISKS"], vms.Select(v => (IReadOnlyList<string>)
            [
                v.Name, v.Host ?? "-", v.Desired.ToString().ToLowerInvariant(), $"{v.Cpus}", $"{v.MemoryMiB} MiB",
                string.Join(" ", v.Disks.Select(d => $"{d.Id}:{string.Join("+", d.Legs.Select(l => $"{l.DiskServer}/{l.Address}"))}")),
            ]));
        }));
        return command;
    }

    private static Command Show()
    {
        var command = new Command("show", "One VM: the controller's record, and from its host the live state, consoles and mirror health")
            { Name, ControllerConnection.Urls, ControllerConnection.Token, Hosts, Json };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            var record = await client.VmAsync(parse.GetValue(Name)!, ct);
            var live = await LiveAsync(parse, record, ct);
            if (parse.GetValue(Json))
            {
                System.Console.WriteLine(live is null ? JsonSerializer.Serialize(record, ApiJsonContext.Default.VmRecord)
                    : JsonSerializer.Serialize(live, HostApiJsonContext.Default.VmStatus));
                return;
            }
            var rows = new List<IReadOnlyList<string>>
            {
                new[] { "name", record.Name }, new[] { "host", record.Host ?? "-" }, new[] { "desired", record.Desired.ToString().ToLowerInvariant() },
                new[] { "cpus", $"{record.Cpus}" }, new[] { "memory", $"{record.MemoryMiB} MiB" },
            };
            rows.AddRange(record.Disks.Select(d => (IReadOnlyList<string>)[$"disk {d.Id}", $"{Sizes.Format(d.SizeBytes)}, legs {string.Join(" + ", d.Legs.Select(l => $"{l.DiskServer}:{l.Volume} ({l.Address})"))}"]));
            if (live is not null)
            {
                rows.Add(["state", $"{live.State} ({live.StateDetail})"]);
                rows.Add(["pid", live.Pid?.ToString(CultureInfo.InvariantCulture) ?? "-"]);
                rows.Add(["accelerator", live.Accelerator]);
                rows.Add(["serial console", $"xenaoe console {live.Name}  (log {live.Consoles?.SerialLogPath})"]);
                rows.Add(["vnc", live.Consoles?.Vnc ?? "-"]);
                rows.AddRange(live.Disks.Select(d => (IReadOnlyList<string>)[$"mirror {d.Id}", $"{d.Health.ToString().ToLowerInvariant()}, {d.DirtyRegions} dirty regions{(d.Detail is null ? "" : $" ({d.Detail})")}"]));
                rows.AddRange(live.Disks.Where(d => d.Paths is { Count: > 0 }).Select(d => (IReadOnlyList<string>)[$"paths {d.Id}",
                    string.Join(", ", d.Paths!.Select(p => $"{p.Leg} via {p.Interface} {p.State.ToString().ToLowerInvariant()}"))]));
                if (live.Migration is { } m)
                    rows.Add(["migration", $"{m.Phase.ToString().ToLowerInvariant()} to {m.MigrationUri}: total {m.TotalMs:0} ms, downtime {m.DowntimeMs:0} ms{(m.Error is null ? "" : $" ({m.Error})")}"]);
            }
            Table.Write(System.Console.Out, ["FIELD", "VALUE"], rows);
        }));
        return command;
    }

    /// <summary>The VM as its host sees it, when this machine reaches the host daemons (the lab's sockets); null otherwise.</summary>
    private static async Task<VmStatus?> LiveAsync(ParseResult parse, VmRecord record, CancellationToken ct)
    {
        if (record.Host is null)
            return null;
        try
        {
            using var directory = HostDirectory.Open(parse.GetValue(Hosts));
            var (client, _) = await directory.FindHostAsync(record.Host, ct);
            return await client.GetAsync(record.Name, ct);
        }
        catch (Exception e) when (e is ArgumentException or HttpRequestException or HostException)
        {
            return null;
        }
    }

    private static Command Create()
    {
        var cpus = new Option<int>("--cpus") { DefaultValueFactory = _ => 1 };
        var memory = new Option<int>("--memory") { Description = "MiB of RAM", DefaultValueFactory = _ => 256 };
        var disk = new Option<string>("--disk-size") { Description = "Size of its mirrored root disk", DefaultValueFactory = _ => "128M" };
        var image = new Option<string>("--image") { Description = "Raw root-disk image (on the CPU servers) written onto the new mirror" };
        var kernel = new Option<string>("--kernel") { Description = "Kernel image (direct kernel boot)", Required = true };
        var initrd = new Option<string>("--initrd") { Description = "Initial ramdisk" };
        var cmdline = new Option<string>("--cmdline") { Description = "Kernel command line", DefaultValueFactory = _ => "console=ttyS0 root=/dev/vda" };
        var on = new Option<string>("--on") { Description = "Host to run it on (default: the scheduler's choice)" };
        var mac = new Option<string>("--mac") { Description = "MAC of its NIC on the VM network (none: no NIC)" };
        var vnc = new Option<int?>("--vnc-display") { Description = "VNC display on its host's management address (port 5900+N)" };
        var command = new Command("create", "Create a VM: a new mirrored disk on two disk servers (legs in different failure domains) with the image written onto it, then boot it")
            { Name, cpus, memory, disk, image, kernel, initrd, cmdline, on, mac, vnc, NoWait, Json, ControllerConnection.Urls, ControllerConnection.Token };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            var job = await client.CreateVmAsync(new CreateVmRequest(parse.GetValue(Name)!, parse.GetValue(cpus), parse.GetValue(memory),
                Sizes.Parse(parse.GetValue(disk)!), Path.GetFullPath(parse.GetValue(kernel)!), parse.GetValue(initrd) is { } i ? Path.GetFullPath(i) : null,
                parse.GetValue(cmdline), parse.GetValue(image) is { } file ? Path.GetFullPath(file) : null, parse.GetValue(on), parse.GetValue(mac),
                parse.GetValue(vnc)), ct);
            await FinishAsync(client, job, parse, ct);
        }));
        return command;
    }

    private static Command Operation(string verb, string description, Func<ControllerClient, string, ParseResult, CancellationToken, Task<JobRecord>> submit,
        params Option[] extra)
    {
        var command = new Command(verb, description) { Name, NoWait, Json, ControllerConnection.Urls, ControllerConnection.Token };
        foreach (var option in extra)
            command.Options.Add(option);
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            await FinishAsync(client, await submit(client, parse.GetValue(Name)!, parse, ct), parse, ct);
        }));
        return command;
    }

    private static async Task FinishAsync(ControllerClient client, JobRecord job, ParseResult parse, CancellationToken ct)
    {
        if (parse.GetValue(NoWait))
        {
            System.Console.WriteLine(parse.GetValue(Json) ? JsonSerializer.Serialize(job, ApiJsonContext.Default.JobRecord) : $"job {job.Id} submitted: xenaoe job watch {job.Id}");
            return;
        }
        await ControllerCommands.FollowAsync(client, job, parse.GetValue(Json), ct);
    }
}
