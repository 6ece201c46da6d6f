using XenAoe.Agents;
using XenAoe.Control.Model;
using XenAoe.Control.Tests.Api;

namespace XenAoe.Control.Tests;

/// <summary>Machines registering (again) and leaving the inventory.</summary>
public sealed partial class ControllerStateTests
{
    [Fact]
    public async Task A_host_registering_again_gets_its_new_address_and_keeps_its_state()
    {
        await _state.RegisterHostAsync(TestRecords.Host("cpu1", "http://10.0.0.21:7300"), h => h, default);
        await _state.UpdateHostAsync("cpu1", h => h with { State = HostState.Dead, StateReason = "no heartbeat" }, default);
        var again = await _state.RegisterHostAsync(TestRecords.Host("cpu1", "http://10.0.0.99:7300"), h => h with { ApiUrl = "http://10.0.0.99:7300" }, default);
        Assert.Equal("http://10.0.0.99:7300", again.ApiUrl);
        Assert.Equal(HostState.Dead, again.State);
        var stored = (await _state.HostAsync("cpu1", default))!;
        Assert.Equal((again.ApiUrl, again.State), (stored.ApiUrl, stored.State));
    }

    [Fact]
    public async Task Disk_servers_get_the_lowest_free_shelf_and_keep_it_when_they_register_again()
    {
        Assert.Equal(1, (await RegisterDiskAsync("disk1", null)).Shelf);
        Assert.Equal(5, (await RegisterDiskAsync("disk5", 5)).Shelf);
        Assert.Equal(2, (await RegisterDiskAsync("disk2", null)).Shelf);
        Assert.Equal(5, (await RegisterDiskAsync("disk5", null, "http://10.0.0.55:7200")).Shelf);
        Assert.Equal("http://10.0.0.55:7200", (await _state.DiskServerAsync("disk5", default))!.ApiUrl);

        var taken = await Assert.ThrowsAsync<ControlException>(() => RegisterDiskAsync("disk9", 5));
        Assert.Equal(409, taken.Status);
        Assert.Contains("shelf 5 is disk5's", taken.Message);
        var moved = await Assert.ThrowsAsync<ControlException>(() => RegisterDiskAsync("disk1", 7));
        Assert.Contains("disk1 has shelf 1", moved.Message);
        Assert.Null(await _state.DiskServerAsync("disk9", default));
    }

    [Fact]
    public async Task Disk_servers_registering_at_once_all_get_different_shelves()
    {
        var disks = await Task.WhenAll(Enumerable.Range(1, 8).Select(async i =>
        {
            await Task.Yield();
            return await RegisterDiskAsync($"disk{i}", null);
        }));
        Assert.Equal(Enumerable.Range(1, 8), disks.Select(d => (int)d.Shelf).Order());
    }

    [Fact]
    public async Task A_removed_disk_servers_shelf_is_free_again()
    {
        await RegisterDiskAsync("disk1", null);
        await _state.RemoveDiskServerAsync("disk1", default);
        Assert.Equal(1, (await RegisterDiskAsync("disk2", null)).Shelf);
    }

    [Fact]
    public async Task Removing_a_host_with_VMs_or_a_disk_server_with_legs_is_refused_naming_them()
    {
        await _state.PutHostAsync(TestRecords.Host("cpu1", "http://10.0.0.21:7300"), default);
        await RegisterDiskAsync("disk-a", 1);
        await _state.CreateVmAsync(TestRecords.Vm("vm1", host: "cpu1"), default);
        await _state.CreateVmAsync(TestRecords.Vm("vm2", host: null), default);

        var host = await Assert.ThrowsAsync<ControlException>(() => _state.RemoveHostAsync("cpu1", default));
        Assert.Equal(409, host.Status);
        Assert.Contains("VMs placed on it: vm1", host.Message);
        var disk = await Assert.ThrowsAsync<ControlException>(() => _state.RemoveDiskServerAsync("disk-a", default));
        Assert.Contains("holds legs of vm1 disk root, vm2 disk root", disk.Message);

        await _state.DeleteVmAsync("vm1", default);
        await _state.DeleteVmAsync("vm2", default);
        await _state.RemoveHostAsync("cpu1", default);
        await _state.RemoveDiskServerAsync("disk-a", default);
        Assert.Empty(await _store.ListAsync(""));
        Assert.Equal(404, (await Assert.ThrowsAsync<ControlException>(() => _state.RemoveHostAsync("cpu1", default))).Status);
    }

    private Task<DiskServerRecord> RegisterDiskAsync(string name, ushort? shelf, string url = "http://10.0.0.11:7200") =>
        _state.RegisterDiskServerAsync(name, shelf, (current, chosen) =>
            (current ?? new DiskServerRecord { Name = name, ApiUrl = url, Shelf = chosen }) with { ApiUrl = url, StorageNics = [new StorageNic("eth1", "52:54:00:00:00:11", 9000)] }, default);
}
