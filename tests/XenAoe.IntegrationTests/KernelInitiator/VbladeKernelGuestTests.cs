using Xunit.Abstractions;
using XenAoe.IntegrationTests.Infrastructure;

namespace XenAoe.IntegrationTests.KernelInitiator;

/// <summary>
/// The Linux kernel <c>aoe</c> initiator, in a QEMU guest, against vblade: proves the guest harness on the reference
/// target before the same scenarios (<see cref="GuestScenarios"/>) run against ours.
/// </summary>
[Trait("Category", "Integration")]
public sealed class VbladeKernelGuestTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Kernel_initiator_writes_and_reads_back_16_MiB_through_vblade()
    {
        var run = await GuestScenarios.WriteReadBackAsync(GuestScenarios.Vblade, output.WriteLine, offsetMiB: 8, lengthMiB: 16);

        Assert.StartsWith(GuestInit.PassTag + " write-readback", run.Pass.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Kernel_initiator_carries_on_writing_when_vblade_is_killed_and_restarted()
    {
        var run = await GuestScenarios.WriteLoopAcrossTargetRestartAsync(GuestScenarios.Vblade, output.WriteLine, outage: TimeSpan.FromSeconds(3));

        Assert.StartsWith(GuestInit.PassTag + " write-loop", run.Pass.Text, StringComparison.Ordinal);
        Assert.True(run.Pass.Number("stalls") >= 1, $"Expected at least one stalled write: {run.Pass.Text}");
    }
}
