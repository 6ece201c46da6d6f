using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using XenAoe.Agents.Host;
using XenAoe.Hypervisors;

namespace XenAoe.Cli;

/// <summary><c>xenaoe vm ...</c> and <c>xenaoe console</c>: VMs on the host daemons (directly, until the controller exists).</summary>
internal static class VmCommands
{
    private static readonly Option<string[]> Hosts = new("--host") { Description = "Host daemon socket or URL (repeat); default: $XENAOE_HOSTS, else the lab's hosts" };
    private static readonly Option<bool> Json = new("--json") { Description = "Print JSON instead of a table" };
    private static readonly Argument<string> Name = new("name") { Description = "VM name" };

    public static Command Build()
    {
        var vm = new Command("vm", "Run, stop, inspect and live-migrate VMs on the CPU servers");
        vm.Subcommands.Add(List());
        vm.Subcommands.Add(Show());
        vm.Subcommands.Add(Start());
        vm.Subcommands.Add(Simple("stop", "Power the guest off (ACPI; forced after --timeout) and release its disks", async (c, n, ct) => await c.StopAsync(n, null, ct)));
        vm.Subcommands.Add(Simple("kill", "Force the VM off at once and release its disks", (c, n, ct) => c.KillAsync(n, ct)));
        vm.Subcommands.Add(Simple("reboot", "Hard-reset the VM", (c, n, ct) => c.RebootAsync(n, ct)));
        vm.Subcommands.Add(Migrate());
        return vm;
    }

    public static Command Console() => SerialConsole.Build(Hosts);

    private static Command List()
    {
        var command = new Command("list", "Every VM on every host") { Hosts, Json };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var directory = HostDirectory.Open(parse.GetValue(Hosts));
            var rows = new List<(string Host, VmStatus Vm)>();
            foreach (var (client, info, error) in await directory.InfosAsync(ct))
            {
                if (info is null)
                {
                    System.Console.Error.WriteLine($"warning: host {client.Endpoint} does not answer: {error}");
                    continue;
                }
                rows.AddRange((await client.ListAsync(ct)).Select(v => (info.Name, v)));
            }
            if (parse.GetValue(Json))
            {
                System.Console.WriteLine(JsonSerializer.Serialize(rows.Select(r => r.Vm).ToList(), HostApiJsonContext.Default.IReadOnlyListVmStatus));
                return;
            }
            Table.Write(System.Console.Out, ["NAME", "HOST", "STATE", "ROLE", "CPUS", "MEMORY", "DISKS", "PID"], rows.Select(r => (IReadOnlyList<string>)
            [
                r.Vm.Name, r.Host, r.Vm.State, r.Vm.Role, $"{r.Vm.Cpus}", $"{r.Vm.MemoryMiB} MiB",
                string.Join(" ", r.Vm.Disks.Select(d => $"{d.Id}:{d.Health}")), r.Vm.Pid?.ToString(CultureInfo.InvariantCulture) ?? "-",
            ]));
        }));
        return command;
    }

    private static Command Show()
    {
        var command = new Command("show", "One VM: state, consoles, disks and the last migration") { Name, Hosts, Json };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var directory = HostDirectory.Open(parse.GetValue(Hosts));
            var (client, vm) = await directory.FindVmAsync(parse.GetValue(Name)!, ct);
            if (parse.GetValue(Json))
            {
                System.Console.WriteLine(JsonSerializer.Serialize(vm, HostApiJsonContext.Default.VmStatus));
                return;
            }
            var host = await client.InfoAsync(ct);
            Table.Write(System.Console.Out, ["FIELD", "VALUE"], new List<IReadOnlyList<string>>
            {
                new[] { "name", vm.Name }, new[] { "host", host.Name }, new[] { "state", $"{vm.State} ({vm.StateDetail})" }, new[] { "role", vm.Role },
                new[] { "cpus", $"{vm.Cpus}" }, new[] { "memory", $"{vm.MemoryMiB} MiB" }, new[] { "accelerator", vm.Accelerator },
                new[] { "pid", vm.Pid?.ToString(CultureInfo.InvariantCulture) ?? "-" },
                new[] { "serial console", vm.Consoles is { } c ? $"xenaoe console {vm.Name}  (socket {c.SerialSocketPath}, log {c.SerialLogPath})" : "-" },
                new[] { "vnc", vm.Consoles?.Vnc ?? "-" },
            }.Concat(vm.Disks.Select(d => (IReadOnlyList<string>)[$"disk {d.Id}", $"{d.Health}, legs {string.Join(" + ", d.Legs)}, {Sizes.Format(d.SizeBytes)}, {d.DirtyRegions} dirty regions{(d.Detail is null ? "" : $" ({d.Detail})")}"]))
             .Concat(vm.Nics.Select(n => (IReadOnlyList<string>)[$"nic {n.Id}", n.Mac]))
             .Concat(vm.Migration is { } m ? [["last migration", Describe(m)]] : []));
        }));
        return command;
    }

    private static Command Start()
    {
        var on = new Option<string>("--on") { Description = "Host to run it on (name or endpoint)", Required = true };
        var disks = new Option<string[]>("--disk") { Description = "ID=LEG0,LEG1: a virtio disk mirrored over two AoE volumes, e.g. root=e1.0,e2.0 (repeat)" };
        var nics = new Option<string[]>("--nic") { Description = "MAC of a virtio NIC on the host's VM bridge (repeat)" };
        var kernel = new Option<string>("--kernel") { Description = "Kernel image (direct kernel boot)", Required = true };
        var initrd = new Option<string>("--initrd") { Description = "Initial ramdisk" };
        var cmdline = new Option<string>("--cmdline") { Description = "Kernel command line", DefaultValueFactory = _ => "console=ttyS0 root=/dev/vda" };
        var cpus = new Option<int>("--cpus") { DefaultValueFactory = _ => 1 };
        var memory = new Option<int>("--memory") { Description = "MiB of RAM", DefaultValueFactory = _ => 256 };
        var vnc = new Option<int?>("--vnc-display") { Description = "VNC display on the host's management address (port 5900+N)" };
        var takeOver = new Option<bool>("--take-over") { Description = "Force the disks' reservations from another host (only if it is dead or fenced)" };
        var command = new Command("start", "Start a VM on a host: assemble its mirrored disks, create its NICs, boot it")
            { Name, on, disks, nics, kernel, initrd, cmdline, cpus, memory, vnc, takeOver, Hosts, Json };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var directory = HostDirectory.Open(parse.GetValue(Hosts));
            var (client, _) = await directory.FindHostAsync(parse.GetValue(on)!, ct);
            var definition = new VmDefinition(parse.GetValue(Name)!, Guid.NewGuid(), parse.GetValue(cpus), parse.GetValue(memory),
                new VmBoot(Path.GetFullPath(parse.GetValue(kernel)!), parse.GetValue(initrd) is { } i ? Path.GetFullPath(i) : null, parse.GetValue(cmdline)!),
                [.. (parse.GetValue(disks) ?? []).Select(ParseDisk)],
                [.. (parse.GetValue(nics) ?? []).Select((mac, index) => new VmNicDefinition($"nic{index}", mac))],
                parse.GetValue(vnc));
            var vm = await client.StartAsync(new StartVmRequest(definition, parse.GetValue(takeOver)), ct);
            if (parse.GetValue(Json))
                System.Console.WriteLine(JsonSerializer.Serialize(vm, HostApiJsonContext.Default.VmStatus));
            else
                System.Console.WriteLine($"VM {vm.Name} {vm.State} (pid {vm.Pid}); serial console: xenaoe console {vm.Name}; VNC: {vm.Consoles?.Vnc}");
        }));
        return command;
    }

    private static VmDiskDefinition ParseDisk(string text)
    {
        var equals = text.IndexOf('=', StringComparison.Ordinal);
        var legs = (equals < 0 ? text : text[(equals + 1)..]).Split(',', StringSplitOptions.TrimEntries);
        if (legs.Length != 2)
            throw new ArgumentException($"--disk '{text}': give ID=LEG0,LEG1, e.g. root=e1.0,e2.0");
        return new VmDiskDefinition(equals < 0 ? "disk0" : text[..equals], legs);
    }

    private static Command Simple(string verb, string description, Func<HostApiClient, string, CancellationToken, Task> action)
    {
        var command = new Command(verb, description) { Name, Hosts };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var directory = HostDirectory.Open(parse.GetValue(Hosts));
            var (client, vm) = await directory.FindVmAsync(parse.GetValue(Name)!, ct);
            await action(client, vm.Name, ct);
            System.Console.WriteLine($"VM {vm.Name}: {verb} done");
        }));
        return command;
    }

    private static Command Migrate()
    {
        var to = new Option<string>("--to") { Description = "Destination host (name or endpoint)", Required = true };
        var downtime = new Option<double?>("--downtime-ms") { Description = "Longest pause the switch-over may take (default 300)" };
        var command = new Command("migrate", "Live-migrate a VM to another host while it runs; its disks are handed over and the source fenced")
            { Name, to, downtime, Hosts, Json };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var directory = HostDirectory.Open(parse.GetValue(Hosts));
            var name = parse.GetValue(Name)!;
            var (source, _) = await directory.FindVmAsync(name, ct);
            var (_, destination) = await directory.FindHostAsync(parse.GetValue(to)!, ct);
            if (destination.ApiUrl is null)
                throw new ArgumentException($"host {destination.Name} has no management address (--listen): it cannot receive migrations");
            var json = parse.GetValue(Json);
            var migration = source.MigrateAsync(name, new MigrateVmRequest(destination.ApiUrl, parse.GetValue(downtime)), ct);
            var shown = "";
            while (!migration.IsCompleted)
            {
                await Task.WhenAny(migration, Task.Delay(TimeSpan.FromMilliseconds(500), ct));
                if (!json && !migration.IsCompleted && await source.MigrationAsync(name, ct) is { } progress && Describe(progress) is var line && line != shown)
                    System.Console.Error.WriteLine($"  {shown = line}");
            }
            var report = await migration;
            if (json)
                System.Console.WriteLine(JsonSerializer.Serialize(report, HostApiJsonContext.Default.MigrationReport));
            else
                System.Console.WriteLine($"VM {name} -> {destination.Name}: {Describe(report)}");
            if (report.Phase != "completed")
                throw new IOException($"migration of {name} failed: {report.Error}");
        }));
        return command;
    }

    private static string Describe(MigrationReport m)
    {
        var parts = new List<string> { m.Phase };
        if (m.RamTotal is > 0 && m.RamTransferred is { } sent)
            parts.Add($"{Sizes.Format(sent)} of {Sizes.Format(m.RamTotal.Value)} RAM sent");
        if (m.TotalMs is { } total)
            parts.Add($"total {total:0} ms");
        if (m.DowntimeMs is { } down)
            parts.Add($"downtime {down:0} ms");
        if (m.HandoverMs is { } handover)
            parts.Add($"disk hand-over {handover:0} ms");
        if (m.Error is { } error)
            parts.Add(error);
        return string.Join(", ", parts);
    }
}
