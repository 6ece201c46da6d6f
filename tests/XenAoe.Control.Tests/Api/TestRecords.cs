using XenAoe.Agents;
using XenAoe.Control.Model;
using XenAoe.Hypervisors;

namespace XenAoe.Control.Tests.Api;

/// <summary>Inventory records written straight into a test controller's store.</summary>
public static class TestRecords
{
    public static VmRecord Vm(string name, string? host, int cpus = 1, int memoryMiB = 1024) => new()
    {
        Name = name, Uuid = Guid.NewGuid(), Cpus = cpus, MemoryMiB = memoryMiB, Host = host,
        Boot = new VmBoot("/boot/vmlinuz", null, "console=ttyS0"),
        Disks = [new VmDiskRecord("root", 1L << 30, [new LegRecord("disk-a", $"{name}-root", "e1.1"), new LegRecord("disk-b", $"{name}-root", "e2.1")])],
        Desired = host is null ? VmDesiredState.Stopped : VmDesiredState.Running,
    };

    public static HostRecord Host(string name, string apiUrl, int cpus = 8, long memoryMiB = 16384, HostState state = HostState.Up) => new()
    {
        Name = name, ApiUrl = apiUrl, Cpus = cpus, MemoryMiB = memoryMiB, State = state, StorageNics = [new StorageNic("eth1", "52:54:00:00:00:01", 9000)],
    };
}
