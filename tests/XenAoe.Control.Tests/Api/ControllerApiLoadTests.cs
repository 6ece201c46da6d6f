using Xunit.Abstractions;
using XenAoe.ControllerApiLoad;

namespace XenAoe.Control.Tests.Api;

/// <summary>Latency under load, measured and printed, never asserted (the machine is shared); only failures fail the test.</summary>
[Trait("Category", "Integration")]
public sealed class ControllerApiLoadTests(ControllerFixture fixture, ITestOutputHelper output) : IClassFixture<ControllerFixture>
{
    [Fact]
    public async Task Sixteen_clients_read_1000_VMs_and_1000_jobs_without_a_failure()
    {
        await ApiLoad.SeedAsync(fixture.State.Store, vms: 1000, jobs: 1000);
        Assert.Equal(1000, (await fixture.State.VmsAsync(default)).Count);

        string[] paths = ["api/v1/vms", "api/v1/jobs"];
        _ = await ApiLoad.RunAsync(fixture.Client, clients: 2, TimeSpan.FromMilliseconds(500), paths);
        var result = await ApiLoad.RunAsync(fixture.Client, clients: 16, TimeSpan.FromSeconds(3), paths);
        output.WriteLine($"GET /api/v1/vms + /api/v1/jobs, 1000 VMs and 1000 jobs: {result}");
        Assert.True(result.Requests > 0, "expected some requests to complete");
        Assert.Equal(0, result.Failures);
    }
}
