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

    [Fact]
    public async Task Removing_a_host_that_runs_a_VM_is_a_409_naming_it_and_changes_nothing_and_an_empty_one_goes()
    {
        const string nobody = "http://127.0.0.1:9";
        await fixture.State.PutHostAsync(TestRecords.Host("cpu-r1", nobody), default);
        await fixture.State.CreateVmAsync(TestRecords.Vm("vm-r1", host: "cpu-r1"), default);
        var before = await fixture.SnapshotAsync();
        await Api.ErrorAsync(await fixture.Client.DeleteAsync("/api/v1/hosts/cpu-r1"), HttpStatusCode.Conflict, "cpu-r1 still has VMs placed on it: vm-r1");
        await Api.ErrorAsync(await fixture.Client.DeleteAsync("/api/v1/disk-servers/disk-a"), HttpStatusCode.NotFound, "no disk server named disk-a");
        Assert.Equal(before, await fixture.SnapshotAsync());

        await fixture.State.DeleteVmAsync("vm-r1", default);
        Assert.Equal(HttpStatusCode.NoContent, (await fixture.Client.DeleteAsync("/api/v1/hosts/cpu-r1")).StatusCode);
        Assert.Null(await fixture.State.HostAsync("cpu-r1", default));
        await Api.ErrorAsync(await fixture.Client.DeleteAsync("/api/v1/hosts/CPU_R1"), HttpStatusCode.NotFound, "no host named CPU_R1");
    }
}
