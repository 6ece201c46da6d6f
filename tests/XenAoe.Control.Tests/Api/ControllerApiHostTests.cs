using System.Net;

namespace XenAoe.Control.Tests.Api;

[Trait("Category", "Integration")]
public sealed class ControllerApiHostTests(ControllerFixture fixture) : IClassFixture<ControllerFixture>
{
    [Fact]
    public async Task A_host_in_maintenance_is_resumed_and_resuming_one_that_is_not_in_maintenance_is_refused()
    {
        const string nobody = "http://127.0.0.1:9";
        await fixture.State.PutHostAsync(TestRecords.Host("cpu-m1", nobody, state: Model.HostState.Maintenance), default);
        var resumed = await Api.OkAsync(await fixture.Client.PostAsync("/api/v1/hosts/cpu-m1/resume", null));
        Assert.Equal("Up", resumed.GetProperty("state").GetString());
        await Api.ErrorAsync(await fixture.Client.PostAsync("/api/v1/hosts/cpu-m1/resume", null), HttpStatusCode.Conflict, "cpu-m1 is up, not in maintenance");
        await Api.ErrorAsync(await fixture.Client.PostAsync("/api/v1/hosts/cpu-none/resume", null), HttpStatusCode.NotFound, "no host named cpu-none");
    }
}
