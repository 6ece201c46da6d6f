using Xunit.Abstractions;
using XenAoe.IntegrationTests.DiskServer;
using XenAoe.IntegrationTests.Infrastructure;

namespace XenAoe.IntegrationTests.KernelInitiator;

/// <summary>The Linux kernel <c>aoe</c> initiator, in a QEMU guest, against our disk server: the same scenarios vblade passes.</summary>
[Trait("Category", "Integration")]
public sealed class XenAoeKernelGuestTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Kernel_initiator_writes_and_reads_back_16_MiB_through_our_target()
    {
        var run = await GuestScenarios.WriteReadBackAsync(StartDiskServer, output.WriteLine, offsetMiB: 8, lengthMiB: 16);

        Assert.StartsWith(GuestInit.PassTag + " write-readback", run.Pass.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Kernel_initiator_carries_on_writing_when_our_target_is_killed_and_restarted()
    {
        var run = await GuestScenarios.WriteLoopAcrossTargetRestartAsync(StartDiskServer, output.WriteLine, outage: TimeSpan.FromSeconds(3));

        Assert.StartsWith(GuestInit.PassTag + " write-loop", run.Pass.Text, StringComparison.Ordinal);
        Assert.True(run.Pass.Number("stalls") >= 1, $"Expected at least one stalled write: {run.Pass.Text}");
    }

    /// <summary>Adopts the scenario's image file into a pool beside it (once) and serves it; called again after a kill -9.</summary>
    private static async Task<LabProcess> StartDiskServer(LabHost host, AoeTargetSpec target, CancellationToken ct)
    {
        var pool = Path.Combine(Path.GetDirectoryName(target.VolumePath)!, "pool");
        if (!File.Exists(Path.Combine(pool, "guest.json")))
        {
            (await DiskServerHost.CliAsync("disk", "volume", "create", "guest", "--pool", pool,
                "--address", $"e{target.Shelf}.{target.Slot}", "--device", target.VolumePath)).EnsureSuccess();
        }
        var server = host.Start("dotnet", DiskServerHost.CliDll, "disk", "serve", "--pool", pool, "--interface", target.Nic);
        await server.WaitForOutputAsync("disk server ready", TimeSpan.FromSeconds(30), ct);
        return server;
    }
}
