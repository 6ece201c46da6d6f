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
    ControllerCommands.Controller(),
    ClusterCommands.Cluster(),
    ClusterCommands.Join(),
    ControllerCommands.Jobs(),
    ControllerCommands.Capacity(),
    ConfigCommands.Build(),
};
return await root.Parse(args).InvokeAsync();
