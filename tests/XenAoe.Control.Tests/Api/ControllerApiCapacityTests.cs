using System.Net;
using System.Net.Sockets;

namespace XenAoe.Control.Tests.Api;

[Trait("Category", "Integration")]
public sealed class ControllerApiCapacityTests(ControllerFixture fixture) : IClassFixture<ControllerFixture>
{
    [Fact]
    public async Task Capacity_counts_the_VMs_that_fit_in_the_inventory_in_the_store()
    {
        // Three hosts of 16 GiB; VMs of 4 GiB: 4 per host when filled, 8 while the VMs of any one host could restart on the other two.
        var nobody = $"http://127.0.0.1:{ClosedPort()}";
        foreach (var name in new[] { "cpu-1", "cpu-2", "cpu-3" })
            await fixture.State.PutHostAsync(TestRecords.Host(name, nobody, cpus: 8, memoryMiB: 16384), default);

        var empty = await Api.OkAsync(await fixture.Client.GetAsync("/api/v1/capacity?cpus=1&memoryMiB=4096"));
        Assert.Equal(12, empty.GetProperty("fitWithoutNPlusOne").GetInt32());
        Assert.Equal(8, empty.GetProperty("fitWithNPlusOne").GetInt32());
        Assert.Equal(3, empty.GetProperty("hosts").GetArrayLength());
        Assert.Contains("N+1", empty.GetProperty("explanation").GetString(), StringComparison.Ordinal);

        Assert.True(await fixture.State.CreateVmAsync(TestRecords.Vm("vm-c1", host: "cpu-1", memoryMiB: 4096), default));
        var one = await Api.OkAsync(await fixture.Client.GetAsync("/api/v1/capacity?cpus=1&memoryMiB=4096"));
        Assert.Equal(11, one.GetProperty("fitWithoutNPlusOne").GetInt32());
        Assert.Equal(7, one.GetProperty("fitWithNPlusOne").GetInt32());
        var cpu1 = one.GetProperty("hosts").EnumerateArray().Single(h => h.GetProperty("host").GetString() == "cpu-1");
        Assert.Equal(1, cpu1.GetProperty("vms").GetInt32());
        Assert.Equal(12288, cpu1.GetProperty("freeMemoryMiB").GetInt64());
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
