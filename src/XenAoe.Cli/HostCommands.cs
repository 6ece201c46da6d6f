using System.CommandLine;
using System.Net;
using XenAoe.Agents.Host;
using XenAoe.Hypervisors;

namespace XenAoe.Cli;

/// <summary><c>xenaoe host ...</c>: the CPU-server daemon.</summary>
internal static class HostCommands
{
    public static Command Build()
    {
        var host = new Command("host", "CPU-server daemon: runs VMs whose disks are mirrored over two disk servers");
        host.Subcommands.Add(Serve());
        return host;
    }

    private static Command Serve()
    {
        var name = new Option<string>("--name") { Description = "Host name", DefaultValueFactory = _ => Environment.MachineName };
        var state = new Option<string>("--state-dir") { Description = "VM run directories, API and NBD sockets", DefaultValueFactory = _ => "/var/lib/xenaoe/host" };
        var interfaces = new Option<string[]>("--interface", "-i") { Description = "Storage NIC (repeat for each path)", Required = true };
        var listen = new Option<string>("--listen") { Description = "Management address:port for the API (other hosts send migrations here), e.g. 10.77.0.21:7300" };
        var bridge = new Option<string>("--vm-bridge") { Description = "Bridge the VMs' TAP devices join" };
        var accel = new Option<Accelerator>("--accel") { Description = "CPU virtualization: auto (KVM if it works), kvm or tcg", DefaultValueFactory = _ => Accelerator.Auto };
        var legTimeout = new Option<double>("--leg-timeout") { Description = "Seconds without an answer before a mirror leg is dropped", DefaultValueFactory = _ => 1.5 };
        var command = new Command("serve", "Run the host daemon until SIGINT/SIGTERM") { name, state, interfaces, listen, bridge, accel, legTimeout };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            var options = new HostDaemonOptions
            {
                Name = parse.GetValue(name)!,
                StateDirectory = Path.GetFullPath(parse.GetValue(state)!),
                StorageInterfaces = parse.GetValue(interfaces)!,
                Listen = parse.GetValue(listen) is { } address ? IPEndPoint.Parse(address) : null,
                VmBridge = parse.GetValue(bridge),
                Accelerator = parse.GetValue(accel),
                LegTimeout = TimeSpan.FromSeconds(parse.GetValue(legTimeout)),
            };
            await HostDaemon.RunAsync(options, ct);
        }));
        return command;
    }
}
