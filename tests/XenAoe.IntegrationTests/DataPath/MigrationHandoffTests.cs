using XenAoe.Aoe;
using XenAoe.Agents.Host;
using XenAoe.IntegrationTests.DiskServer;
using System.Text.Json;
using XenAoe.Mirror;
using XenAoe.IntegrationTests.Infrastructure;

namespace XenAoe.IntegrationTests.DataPath;

/// <summary>The storage half of a live migration: the destination joins the reservation, the source closes, the destination fences it.</summary>
[Trait("Category", "Integration")]
public sealed class MigrationHandoffTests
{
    [Fact]
    public async Task The_destination_joins_while_the_source_writes_then_takes_over_and_the_source_is_refused()
    {
        await using var mirror = await MirrorLab.StartAsync();
        var cpu2 = await mirror.Lab.AddHostAsync("cpu2");
        var source = await OpenAsync(mirror.Cpu);
        var data = new byte[1 << 20];
        Random.Shared.NextBytes(data);
        await source.Mirror.WriteAsync(0, data);

        await using var standby = await PrepareIncomingAsync(cpu2);
        Assert.Equal(4, (await HoldersAsync(mirror.Disk1)).Count); // both hosts, two NICs each
        // Joined, not taken: the source keeps writing while the destination waits.
        Random.Shared.NextBytes(data);
        await source.Mirror.WriteAsync(0, data);
        await source.Mirror.FlushAsync();
        await source.DisposeAsync();

        await using var destination = await standby.ActivateAsync();
        var back = new byte[data.Length];
        await destination.Mirror.ReadAsync(0, back);
        Assert.Equal(data, back);
        Assert.Equal(MirrorHealth.Healthy, destination.Mirror.Health);
        var cpu2Macs = new[] { await cpu2.MacAsync("eth0"), await cpu2.MacAsync("eth1") };
        foreach (var disk in new[] { mirror.Disk1, mirror.Disk2 })
            Assert.Equal(cpu2Macs.Order(), (await HoldersAsync(disk)).Order());

        // The source is fenced: a host that wakes up and reopens the mirror is refused without a take-over.
        var error = await Assert.ThrowsAsync<MirrorAssemblyException>(() => OpenAsync(mirror.Cpu));
        Assert.Contains("reserved by", error.Message);
        await destination.Mirror.WriteAsync(1 << 20, data);
    }

    [Fact]
    public async Task A_standby_given_up_leaves_the_reservation_to_the_source()
    {
        await using var mirror = await MirrorLab.StartAsync();
        var cpu2 = await mirror.Lab.AddHostAsync("cpu2");
        await using var source = await OpenAsync(mirror.Cpu);
        var standby = await PrepareIncomingAsync(cpu2);
        await standby.DisposeAsync();

        var sourceMacs = new[] { await mirror.Cpu.MacAsync("eth0"), await mirror.Cpu.MacAsync("eth1") };
        foreach (var disk in new[] { mirror.Disk1, mirror.Disk2 })
            Assert.Equal(sourceMacs.Order(), (await HoldersAsync(disk)).Order());
        await source.Mirror.WriteAsync(0, new byte[4096]);
        await source.Mirror.FlushAsync();
    }

    private static MirrorDataPathOptions Options() =>
        new() { Interfaces = ["eth0", "eth1"], Legs = [AoeAddress.Parse("e1.0"), AoeAddress.Parse("e2.0")] };

    // The initiator's raw sockets are opened in the host's namespace; they stay there for the continuations that follow.
    private static Task<MirrorDataPath> OpenAsync(LabHost host) => host.Invoke(() => MirrorDataPath.OpenAsync(Options()));

    private static Task<MirrorDataPathStandby> PrepareIncomingAsync(LabHost host) => host.Invoke(() => MirrorDataPath.PrepareIncomingAsync(Options()));

    private static async Task<IReadOnlyList<string>> HoldersAsync(DiskServerHost disk)
    {
        var listing = (await DiskServerHost.CliAsync("disk", "volume", "list", "--pool", disk.Pool, "--json")).EnsureSuccess().StdOut;
        using var json = JsonDocument.Parse(listing);
        return [.. json.RootElement[0].GetProperty("reservation").EnumerateArray().Select(m => m.GetString()!.ToLowerInvariant())];
    }
}
