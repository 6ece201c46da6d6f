using System.Diagnostics;
using System.Text;
using XenAoe.Aoe;
using XenAoe.Block;
using XenAoe.Initiator;
using XenAoe.IntegrationTests.DiskServer;
using XenAoe.Net;
using Xunit.Abstractions;

namespace XenAoe.IntegrationTests.Initiator;

/// <summary>Reservations (fencing), config strings, MAC masks and discovery edge cases through our initiator.</summary>
[Trait("Category", "Integration")]
public sealed class InitiatorControlTests(ITestOutputHelper output)
{
    private static readonly MacAddress Stranger = MacAddress.Parse("02:00:00:00:00:99");

    [Fact]
    public async Task A_reservation_held_by_another_MAC_refuses_io_at_once_and_a_force_set_takes_it_back()
    {
        await using var lab = await InitiatorLab.CreateAsync();
        await lab.StartOurTargetAsync("16M");
        var initiator = lab.StartInitiator();
        await using var device = await initiator.OpenAsync(InitiatorLab.Address);
        var data = new byte[64 << 10];
        Random.Shared.NextBytes(data);
        await device.WriteAsync(0, data);

        // The controller fences this host: the disk server force-sets the reservation to another host's MAC.
        (await DiskServerHost.CliAsync("disk", "volume", "reserve", InitiatorLab.Volume, "--pool", lab.Disk!.Pool, "--mac", Stranger.ToString())).EnsureSuccess();
        Assert.Equal([Stranger], await device.ReadReservationAsync());

        var clock = Stopwatch.StartNew();
        var refused = await Assert.ThrowsAsync<BlockDeviceException>(async () => await device.WriteAsync(0, data));
        var refusedAfter = clock.Elapsed;
        Assert.Equal(BlockError.NotPermitted, refused.Error);
        output.WriteLine($"write refused after {refusedAfter.TotalMilliseconds:0.0} ms: {refused.Message}");
        Assert.True(refusedAfter < TimeSpan.FromSeconds(1), $"a fenced write must fail at once, not after retries ({refusedAfter})");
        Assert.Equal(BlockError.NotPermitted, (await Assert.ThrowsAsync<BlockDeviceException>(async () => await device.ReadAsync(0, new byte[512]))).Error);

        // A plain set from a MAC not on the list is refused; a force-set is not.
        var denied = await Assert.ThrowsAsync<AoeCommandException>(() => device.SetReservationAsync(device.LocalMacs, force: false));
        Assert.Equal(AoeError.TargetReserved, denied.Error);
        Assert.Equal(device.LocalMacs, await device.SetReservationAsync(device.LocalMacs, force: true));
        await device.WriteAsync(0, data);
        var back = new byte[data.Length];
        await device.ReadAsync(0, back);
        Assert.Equal(data, back);

        // The holder may release it with a plain set of an empty list.
        Assert.Empty(await device.SetReservationAsync([], force: false));
        Assert.Empty(await device.ReadReservationAsync());
    }

    [Fact]
    public async Task Config_string_and_MAC_mask_commands_work_against_our_target()
    {
        await using var lab = await InitiatorLab.CreateAsync();
        await lab.StartOurTargetAsync("8M");
        await ConfigAndMaskAsync(lab, deletes: true);
    }

    [Fact]
    public async Task Config_string_and_MAC_mask_commands_work_against_vblade()
    {
        await using var lab = await InitiatorLab.CreateAsync();
        await lab.StartVbladeAsync(8 << 20);
        await ConfigAndMaskAsync(lab, deletes: false);
    }

    /// <param name="deletes">
    /// Whether to test MAC mask deletes: vblade's delete computes the end of its list in entries where it needs bytes and
    /// memmoves a negative length, so it crashes (or finds nothing); its adds and reads work.
    /// </param>
    private static async Task ConfigAndMaskAsync(InitiatorLab lab, bool deletes)
    {
        var initiator = lab.StartInitiator();
        await using var device = await initiator.OpenAsync(InitiatorLab.Address);
        var cpu1 = Encoding.ASCII.GetBytes("owner=cpu1");
        var cpu2 = Encoding.ASCII.GetBytes("owner=cpu2");

        Assert.Empty(await device.ReadConfigAsync());
        Assert.Equal(cpu1, await device.SetConfigAsync(cpu1, force: false));
        Assert.Equal(cpu1, await device.ReadConfigAsync());
        Assert.Equal(cpu1, await device.SetConfigAsync(cpu1, force: false)); // setting the same string again is fine
        var present = await Assert.ThrowsAsync<AoeCommandException>(() => device.SetConfigAsync(cpu2, force: false));
        Assert.Equal(AoeError.ConfigStringPresent, present.Error);
        Assert.True(await device.TestConfigAsync(cpu1, prefix: false, TimeSpan.FromSeconds(2)));
        Assert.True(await device.TestConfigAsync(Encoding.ASCII.GetBytes("owner="), prefix: true, TimeSpan.FromSeconds(2)));
        Assert.False(await device.TestConfigAsync(cpu2, prefix: false, TimeSpan.FromMilliseconds(600)));
        Assert.Equal(cpu2, await device.SetConfigAsync(cpu2, force: true));
        var seen = Assert.Single(await initiator.DiscoverAsync(TimeSpan.FromMilliseconds(500)), t => t.Address == InitiatorLab.Address);
        Assert.Equal(cpu2, seen.ConfigString);

        Assert.Empty(await device.ReadMacMaskAsync());
        var ours = device.LocalMacs;
        var mask = await device.EditMacMaskAsync([.. ours.Select(AoeMacMaskEdit.Add), AoeMacMaskEdit.Add(Stranger)]);
        Assert.Equal([.. ours, Stranger], mask);
        Assert.Equal(mask, await device.ReadMacMaskAsync());
        // Still admitted: I/O works with the mask naming us.
        await device.WriteAsync(0, new byte[4096]);
        if (deletes)
        {
            Assert.Equal(ours, await device.EditMacMaskAsync([AoeMacMaskEdit.Delete(Stranger)]));
            Assert.Empty(await device.EditMacMaskAsync([.. ours.Select(AoeMacMaskEdit.Delete)]));
        }
    }

    [Fact]
    public async Task Announcements_are_learned_and_replies_claiming_a_wildcard_address_are_ignored()
    {
        await using var lab = await InitiatorLab.CreateAsync();
        var initiator = lab.StartInitiator();
        using var socket = lab.DiskHost.Invoke(() => PacketSocket.Open("eth0", AoeProtocol.EtherType));
        var frame = new byte[60];
        void Announce(ushort shelf, byte slot)
        {
            new AoeHeader
            {
                Destination = MacAddress.Broadcast,
                Source = socket.Interface.Mac,
                Version = AoeProtocol.Version,
                Flags = AoeFlags.Response,
                Shelf = shelf,
                Slot = slot,
                Command = AoeCommand.QueryConfig,
                Tag = 0,
            }.Write(frame);
            new ConfigHeader { BufferCount = 8, SectorCount = 17, AoeVersion = AoeProtocol.Version }.Write(frame);
            socket.Send(frame);
        }

        Announce(AoeProtocol.BroadcastShelf, 3);
        Announce(4, AoeProtocol.BroadcastSlot);
        Announce(5, 5);
        var target = await Eventually.ReferenceAsync(
            () => Task.FromResult(initiator.Targets.FirstOrDefault(t => t.Address == new AoeAddress(5, 5))),
            TimeSpan.FromSeconds(5), "the announcement of e5.5 to be learned");
        Assert.Equal(socket.Interface.Mac, Assert.Single(target.Paths).TargetMac);
        Assert.Equal(8, target.BufferCount);
        Assert.DoesNotContain(initiator.Targets, t => t.Address.IsBroadcast);
    }
}
