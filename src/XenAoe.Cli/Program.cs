using System.CommandLine;
using XenAoe.Cli;

var root = new RootCommand("XenAoE: a private cloud on commodity machines, with VM disks mirrored over ATA over Ethernet.")
{
    DiskCommands.Build(),
    MirrorCommands.Build(),
    HostCommands.Build(),
    VmCommands.Build(),
    VmCommands.Console(),
    LabCommands.Build(),
};
foreach (var (name, description) in NotImplementedCommands.All)
    root.Subcommands.Add(NotImplementedCommands.Build(name, description));
return await root.Parse(args).InvokeAsync();
