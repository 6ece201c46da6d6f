using System.CommandLine;

namespace XenAoe.Cli;

/// <summary>Parts of XenAoE that are designed (docs/DESIGN.md) but not built yet: they say so instead of pretending.</summary>
internal static class NotImplementedCommands
{
    public static readonly (string Name, string Description)[] All =
    [
        ("controller", "Controller daemon: state, jobs, scheduler, failover (not implemented yet)"),
    ];

    public static Command Build(string name, string description)
    {
        var command = new Command(name, description) { TreatUnmatchedTokensAsErrors = false };
        command.SetAction(_ =>
        {
            Console.Error.WriteLine($"xenaoe {name}: not implemented yet. Today XenAoE ships the disk server ('xenaoe disk'); see README.md.");
            return 2;
        });
        return command;
    }
}
