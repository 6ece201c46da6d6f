using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using XenAoe.Agents.Host;
using XenAoe.Lab.Cluster;

namespace XenAoe.Cli;

/// <summary><c>xenaoe lab up|status|down</c>: a whole cluster in network namespaces on this machine (as root).</summary>
internal static class LabCommands
{
    private static readonly Option<string> State = new("--state-dir") { Description = "Where the lab records what it made (default $XENAOE_LAB or /var/lib/xenaoe/lab)", DefaultValueFactory = _ => HostDirectory.DefaultLabState };
    private static readonly Option<bool> Json = new("--json") { Description = "Print JSON instead of a table" };

    public static Command Build()
    {
        var lab = new Command("lab", "A whole cluster in network namespaces on this machine: disk servers, CPU servers, switches, VMs");
        lab.Subcommands.Add(Up());
        lab.Subcommands.Add(Status());
        lab.Subcommands.Add(Down());
        lab.Subcommands.Add(Switch());
        return lab;
    }

    private static Command Switch()
    {
        var name = new Argument<string>("switch") { Description = "The storage switch: san0 or san1" };
        var state = new Argument<string>("state") { Description = "down (unplug all its ports) or up (plug them back)" };
        state.AcceptOnlyFromAmong("down", "up");
        var command = new Command("switch", "Cut a storage switch (every port unplugged) or restore it: the VMs' disks carry on over the other one") { name, state, State };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            var up = parse.GetValue(state) == "up";
            var ports = await LabNetwork.SetStorageSwitchAsync(parse.GetValue(State)!, parse.GetValue(name)!, up, ct);
            Console.WriteLine($"{parse.GetValue(name)} {(up ? "restored" : "cut")}: {string.Join(", ", ports)} {(up ? "up" : "down")}");
        }));
        return command;
    }

    private static Command Up()
    {
        var disks = new Option<int>("--disks") { Description = "Disk servers", DefaultValueFactory = _ => 2 };
        var cpus = new Option<int>("--cpus") { Description = "CPU servers", DefaultValueFactory = _ => 2 };
        var vms = new Option<int>("--vms") { Description = "VMs to boot from mirrored disks (0: none)", DefaultValueFactory = _ => 1 };
        var prefix = new Option<string>("--prefix") { Description = "Names of the lab's namespaces start with PREFIX- (several labs can coexist)", DefaultValueFactory = _ => LabPlan.DefaultPrefix };
        var store = new Option<LabStore>("--store") { Description = "The controllers' state: sqlite (one controller) or etcd (3 members, 2 controllers, one leads)", DefaultValueFactory = _ => LabStore.Sqlite };
        var command = new Command("up", "Build the cluster, start its daemons and controller, and boot the first VM from its mirrored AoE disk") { disks, cpus, vms, prefix, store, State };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            var plan = new LabPlan
            {
                DiskServers = parse.GetValue(disks), CpuServers = parse.GetValue(cpus), Prefix = parse.GetValue(prefix)!, StateDirectory = parse.GetValue(State)!,
            }.Validate();
            if (parse.GetValue(vms) is < 0 or > 20)
                throw new ArgumentException("--vms is 0..20");
            if (plan.DiskServers < 2)
                throw new ArgumentException("a mirrored cluster needs at least two disk servers");
            var cluster = new LabCluster(plan, Console.Out, Self());
            try
            {
                var booted = await cluster.UpAsync(parse.GetValue(vms), parse.GetValue(store), ct);
                Console.WriteLine();
                Table.Write(Console.Out, ["VM", "ADDRESS", "BOOTED IN", "COUNTER"],
                    booted.Select(b => (IReadOnlyList<string>)[b.Vm, $"http://{b.Address}/counter", $"{b.Boot.TotalSeconds:0.0} s", $"{b.Counter}"]));
                Console.WriteLine();
                Console.WriteLine("Next: xenaoe vm list | xenaoe console vm1 | xenaoe vm migrate vm1 --to cpu2 | xenaoe job list | xenaoe lab status | xenaoe lab down");
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Console.Error.WriteLine($"lab up failed: {e.Message}");
                Console.Error.WriteLine("What was built is still there for inspection; `xenaoe lab down` removes it.");
                throw;
            }
        }));
        return command;
    }

    private static Command Status()
    {
        var command = new Command("status", "What the lab has: namespaces, links, daemons, VMs and their counters") { State, Json };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            var stateDir = parse.GetValue(State)!;
            var status = await LabNetwork.StatusAsync(stateDir, ct: ct);
            if (parse.GetValue(Json))
            {
                Console.WriteLine(JsonSerializer.Serialize(status, LabJsonContext.Default.LabStatus));
                return;
            }
            if (!status.Exists)
            {
                Console.WriteLine($"no lab here ({stateDir}); start one with `xenaoe lab up`");
                return;
            }
            Console.WriteLine($"lab {status.Prefix} ({status.Phase ?? "not recorded"}), state in {status.StateDirectory}");
            Console.WriteLine();
            Table.Write(Console.Out, ["NAMESPACE", "LINKS"], status.Namespaces.Select(n => (IReadOnlyList<string>)
                [n.Name + (n.Exists ? "" : " (missing)"), string.Join(" ", n.Links.Where(l => l.Name != "lo").Select(l => $"{l.Name}:{(l.Up ? "up" : "DOWN")}/{l.Mtu}"))]));
            Console.WriteLine();
            Table.Write(Console.Out, ["DAEMON", "NAMESPACE", "PID", "ALIVE", "LOG"], status.Processes.Select(p => (IReadOnlyList<string>)
                [p.Name, p.Namespace, p.Pid?.ToString(CultureInfo.InvariantCulture) ?? "-", p.Alive ? "yes" : "NO", p.LogFile]));
            if (ControllerConnection.LabHasController(stateDir))
            {
                Console.WriteLine();
                try
                {
                    using var controller = ControllerConnection.OpenLab(stateDir, TimeSpan.FromSeconds(5));
                    var health = await controller.HealthAsync(ct);
                    var jobs = await controller.JobsAsync(ct);
                    Console.WriteLine($"controller: {health.LeaderName ?? "nobody"} leads ({health.Store}); {jobs.Count(j => !j.IsFinished)} job(s) running, " +
                        $"{jobs.Count(j => j.State == XenAoe.Control.Model.JobState.Failed)} failed of {jobs.Count}");
                }
                catch (Exception e) when (e is XenAoe.Control.ControlException or HttpRequestException)
                {
                    Console.WriteLine($"controller: does not answer ({e.Message})");
                }
            }
            var sockets = HostDirectory.LabHostSockets(stateDir).ToList();
            if (sockets.Count == 0)
                return;
            Console.WriteLine();
            var plan = new LabPlan { StateDirectory = stateDir, Prefix = status.Prefix };
            var rows = new List<IReadOnlyList<string>>();
            foreach (var socket in sockets)
            {
                using var host = new HostApiClient(socket, TimeSpan.FromSeconds(5));
                try
                {
                    var info = await host.InfoAsync(ct);
                    foreach (var vm in await host.ListAsync(ct))
                    {
                        var number = int.TryParse(vm.Name.AsSpan(2), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : 0;
                        var counter = number > 0 ? await LabCluster.ReadCounterAsync(plan, LabCluster.VmAddress(plan, number), ct) : null;
                        rows.Add([vm.Name, info.Name, vm.State, string.Join(" ", vm.Disks.Select(d => $"{d.Id}:{d.Health.ToString().ToLowerInvariant()}")), counter?.ToString(CultureInfo.InvariantCulture) ?? "-"]);
                    }
                }
                catch (Exception e) when (e is HttpRequestException or HostException or TimeoutException)
                {
                    rows.Add(["-", socket, $"host daemon does not answer: {e.Message}", "-", "-"]);
                }
            }
            Table.Write(Console.Out, ["VM", "HOST", "STATE", "DISKS", "COUNTER"], rows);
        }));
        return command;
    }

    private static Command Down()
    {
        var command = new Command("down", "Remove every namespace, bridge, TAP and process the lab made, even after a crash") { State };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            var report = await LabNetwork.DownAsync(parse.GetValue(State)!, new Progress<LabProgress>(p => Console.WriteLine($"[{p.Step}/{p.Total}] {p.Message}")), ct: ct);
            if (!report.LabFound)
            {
                Console.WriteLine("no lab here: nothing to remove");
                return;
            }
            foreach (var problem in report.Problems)
                Console.Error.WriteLine($"problem: {problem}");
            if (!report.Succeeded)
                throw new IOException("the lab was not removed completely; run `xenaoe lab down` again");
            LabCluster.RemoveData(parse.GetValue(State)!);
            Console.WriteLine($"lab removed ({report.Removed.Count} items)");
        }));
        return command;
    }

    /// <summary>How to run this very CLI again inside a namespace: the apphost, or <c>dotnet xenaoe.dll</c>.</summary>
    private static LabCluster.Program Self()
    {
        var process = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell which program this is");
        return Path.GetFileNameWithoutExtension(process) == "dotnet"
            ? new(process, [Path.Combine(AppContext.BaseDirectory, typeof(LabCommands).Assembly.GetName().Name + ".dll")])
            : new(process, []);
    }
}
