using System.CommandLine;
using XenAoe.Agents.Configuration;
using XenAoe.Agents.Disk;
using XenAoe.Agents.Host;
using XenAoe.Control;

namespace XenAoe.Cli;

/// <summary><c>xenaoe config example ROLE</c>: the commented configuration file the package ships as <c>/etc/xenaoe/ROLE.conf</c>.</summary>
internal static class ConfigCommands
{
    public static readonly IReadOnlyList<ConfigSchema> Schemas = [DiskServerOptions.Schema, HostDaemonOptions.Schema, ControllerOptions.Schema];

    public static Command Build()
    {
        var role = new Argument<string>("role") { Description = "disk, host or controller" };
        role.AcceptOnlyFromAmong([.. Schemas.Select(s => s.Role)]);
        var example = new Command("example", "Print the commented example configuration file of a role (every key at its default)") { role };
        example.SetAction(parse => Console.Write(Schemas.Single(s => s.Role == parse.GetValue(role)).Example()));
        return new Command("config", "The daemons' configuration files (/etc/xenaoe/ROLE.conf)") { example };
    }
}
