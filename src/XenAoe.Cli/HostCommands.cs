using System.CommandLine;
using XenAoe.Agents.Host;
using XenAoe.Control.Model;

namespace XenAoe.Cli;

/// <summary><c>xenaoe host ...</c>: the CPU-server daemon.</summary>
internal static class HostCommands
{
    public static Command Build()
    {
        var host = new Command("host", "CPU servers: the daemon that runs VMs on mirrored disks, and the controller's inventory of them");
        host.Subcommands.Add(Serve());
        host.Subcommands.Add(List());
        host.Subcommands.Add(Evacuate());
        host.Subcommands.Add(Resume());
        host.Subcommands.Add(Remove());
        return host;
    }

    private static Command List()
    {
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table" };
        var command = new Command("list", "CPU servers in the controller's inventory: state, capacity, storage NICs (name/MTU), last heartbeat") { ControllerConnection.Urls, ControllerConnection.Token, json };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            var hosts = await client.HostsAsync(ct);
            if (parse.GetValue(json))
                Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(hosts, XenAoe.Control.Api.ApiJsonContext.Default.IReadOnlyListHostRecord));
            else
                PrintHosts(hosts);
        }));
        return command;
    }

    public static void PrintHosts(IEnumerable<HostRecord> hosts) =>
        Table.Write(Console.Out, ["NAME", "STATE", "CPUS", "MEMORY", "NICS", "LABELS", "LAST SEEN", "API", "REASON"], hosts.Select(h => (IReadOnlyList<string>)
            [h.Name, h.State.ToString().ToLowerInvariant(), $"{h.Cpus}", $"{h.MemoryMiB} MiB", Table.Nics(h.StorageNics), Table.Labels(h.Labels),
             h.LastSeen?.ToLocalTime().ToString("HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture) ?? "-", h.ApiUrl, h.StateReason ?? ""]));

    private static Command Remove()
    {
        var name = new Argument<string>("name") { Description = "CPU server to take out of the inventory" };
        var command = new Command("remove", "Take a CPU server out of the inventory (refused while VMs are placed there); stop its service first, or it registers again at its next start")
            { name, ControllerConnection.Urls, ControllerConnection.Token };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            await client.RemoveHostAsync(parse.GetValue(name)!, ct);
            Console.WriteLine($"removed {parse.GetValue(name)}");
        }));
        return command;
    }

    private static Command Evacuate()
    {
        var name = new Argument<string>("name") { Description = "CPU server to empty for maintenance" };
        var command = new Command("evacuate", "Live-migrate every VM off a CPU server and put it in maintenance (a job)") { name, ControllerConnection.Urls, ControllerConnection.Token };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            await ControllerCommands.FollowAsync(client, await client.EvacuateAsync(parse.GetValue(name)!, ct), json: false, ct);
        }));
        return command;
    }

    private static Command Resume()
    {
        var name = new Argument<string>("name") { Description = "CPU server back from maintenance" };
        var command = new Command("resume", "End a CPU server's maintenance: it takes new VMs again") { name, ControllerConnection.Urls, ControllerConnection.Token };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            var host = await client.ResumeHostAsync(parse.GetValue(name)!, ct);
            Console.WriteLine($"{host.Name} is {host.State.ToString().ToLowerInvariant()}");
        }));
        return command;
    }

    private static Command Serve()
    {
        var command = new Command("serve", "Run the host daemon until SIGINT/SIGTERM (settings: /etc/xenaoe/host.conf, XENAOE_*, flags)");
        var flags = new DaemonFlags(command, HostDaemonOptions.Schema);
        command.SetAction((parse, ct) => CommandErrors.Guard(() => HostDaemon.RunAsync(HostDaemonOptions.From(flags.Load(parse)), ct)));
        return command;
    }
}
