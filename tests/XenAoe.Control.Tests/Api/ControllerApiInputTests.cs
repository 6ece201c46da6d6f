using System.Net;
using System.Net.Sockets;

namespace XenAoe.Control.Tests.Api;

/// <summary>Hostile and broken requests: each gets a 4xx (or 502) with a reason, and the store is left exactly as it was.</summary>
[Trait("Category", "Integration")]
public sealed class ControllerApiInputTests(ControllerFixture fixture) : IClassFixture<ControllerFixture>
{
    private const string ValidVm = """{"name":"vm-ok","cpus":1,"memoryMiB":512,"diskBytes":1073741824,"kernel":"/boot/vmlinuz"}""";

    public static TheoryData<string, string, int, string> BadBodies => new()
    {
        { "/api/v1/vms", """{"name":"vm-1","cpus":""", 400, "JSON" },
        { "/api/v1/vms", """not json at all""", 400, "JSON" },
        { "/api/v1/vms", """["an","array"]""", 400, "JSON" },
        { "/api/v1/vms", """{"name":"vm-1","cpus":"two","memoryMiB":512,"diskBytes":1073741824,"kernel":"k"}""", 400, "cpus" },
        { "/api/v1/vms", """{"name":"vm-1","cpus":1.5,"memoryMiB":512,"diskBytes":1073741824,"kernel":"k"}""", 400, "cpus" },
        { "/api/v1/vms", """{"name":42,"cpus":1,"memoryMiB":512,"diskBytes":1073741824,"kernel":"k"}""", 400, "name" },
        { "/api/v1/vms", """{"name":"vm-1","cpus":1,"memoryMiB":512,"diskBytes":99999999999999999999999,"kernel":"k"}""", 400, "diskBytes" },
        { "/api/v1/vms", """{}""", 400, "name" },
        { "/api/v1/vms", """{"name":"vm-1"}""", 400, "cpus" },
        { "/api/v1/vms", """{"name":"vm-1","cpus":1,"memoryMiB":512,"diskBytes":1073741824}""", 400, "kernel" },
        { "/api/v1/vms", """{"name":"VM-1","cpus":1,"memoryMiB":512,"diskBytes":1073741824,"kernel":"k"}""", 400, "must match" },
        { "/api/v1/vms", """{"name":"a23456789012345678901234567890123","cpus":1,"memoryMiB":512,"diskBytes":1073741824,"kernel":"k"}""", 400, "must match" },
        { "/api/v1/vms", """{"name":"a/b","cpus":1,"memoryMiB":512,"diskBytes":1073741824,"kernel":"k"}""", 400, "must match" },
        { "/api/v1/vms", """{"name":"../etc","cpus":1,"memoryMiB":512,"diskBytes":1073741824,"kernel":"k"}""", 400, "must match" },
        { "/api/v1/vms", """{"name":"-vm","cpus":1,"memoryMiB":512,"diskBytes":1073741824,"kernel":"k"}""", 400, "must match" },
        { "/api/v1/vms", """{"name":"","cpus":1,"memoryMiB":512,"diskBytes":1073741824,"kernel":"k"}""", 400, "must match" },
        { "/api/v1/vms", """{"name":"vm-1","cpus":0,"memoryMiB":512,"diskBytes":1073741824,"kernel":"k"}""", 400, "cpus must be" },
        { "/api/v1/vms", """{"name":"vm-1","cpus":-1,"memoryMiB":512,"diskBytes":1073741824,"kernel":"k"}""", 400, "cpus must be" },
        { "/api/v1/vms", """{"name":"vm-1","cpus":1,"memoryMiB":-512,"diskBytes":1073741824,"kernel":"k"}""", 400, "memoryMiB must be" },
        { "/api/v1/vms", """{"name":"vm-1","cpus":1,"memoryMiB":0,"diskBytes":1073741824,"kernel":"k"}""", 400, "memoryMiB must be" },
        { "/api/v1/vms", """{"name":"vm-1","cpus":1,"memoryMiB":512,"diskBytes":0,"kernel":"k"}""", 400, "diskBytes" },
        { "/api/v1/vms", """{"name":"vm-1","cpus":1,"memoryMiB":512,"diskBytes":-1048576,"kernel":"k"}""", 400, "diskBytes" },
        { "/api/v1/vms", """{"name":"vm-1","cpus":1,"memoryMiB":512,"diskBytes":1048577,"kernel":"k"}""", 400, "multiple of 512" },
        { "/api/v1/vms", """{"name":"vm-1","cpus":1,"memoryMiB":512,"diskBytes":1073741824,"kernel":"k","mac":"zz:zz"}""", 400, "MAC" },
        { "/api/v1/hosts", """{"name":"cpu-1"}""", 400, "apiUrl" },
        { "/api/v1/hosts", """{"name":"cpu-1","apiUrl":"file:///etc/passwd"}""", 400, "apiUrl" },
        { "/api/v1/hosts", """{"name":"CPU_1","apiUrl":"http://127.0.0.1:1"}""", 400, "must match" },
        { "/api/v1/disk-servers", """{"name":"disk-1","apiUrl":"http://127.0.0.1:1","shelf":65535}""", 400, "shelf" },
        { "/api/v1/disk-servers", """{"name":"disk-1","apiUrl":"http://127.0.0.1:1","shelf":70000}""", 400, "shelf" },
        { "/api/v1/disk-servers", """{"name":"disk-1","apiUrl":"http://127.0.0.1:1","shelf":-1}""", 400, "shelf" },
        { "/api/v1/vms/vm-1/migrate", """{"to":17}""", 400, "to" },
    };

    [Theory]
    [MemberData(nameof(BadBodies))]
    public async Task A_bad_body_is_refused_with_a_reason_and_changes_nothing(string path, string body, int status, string reason)
    {
        var before = await fixture.SnapshotAsync();
        using var response = await fixture.Client.PostAsync(path, Api.Json(body));
        await Api.ErrorAsync(response, (HttpStatusCode)status, reason);
        Assert.Equal(before, await fixture.SnapshotAsync());
    }

    [Fact]
    public async Task An_empty_body_is_a_400()
    {
        var before = await fixture.SnapshotAsync();
        using var response = await fixture.Client.PostAsync("/api/v1/vms", Api.Json(""));
        await Api.ErrorAsync(response, HttpStatusCode.BadRequest);
        Assert.Equal(before, await fixture.SnapshotAsync());
    }

    [Fact]
    public async Task A_body_that_is_not_JSON_by_content_type_is_a_415()
    {
        var before = await fixture.SnapshotAsync();
        using var response = await fixture.Client.PostAsync("/api/v1/vms", new StringContent(ValidVm, System.Text.Encoding.UTF8, "text/plain"));
        await Api.ErrorAsync(response, HttpStatusCode.UnsupportedMediaType, "application/json");
        Assert.Equal(before, await fixture.SnapshotAsync());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_body_over_64_KiB_is_a_413(bool contentLengthKnown)
    {
        var before = await fixture.SnapshotAsync();
        var padding = new string('x', 70 * 1024);
        var body = $$"""{"name":"vm-big","cpus":1,"memoryMiB":512,"diskBytes":1073741824,"kernel":"k","cmdline":"{{padding}}"}""";
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/vms") { Content = Api.Json(body) };
        if (!contentLengthKnown)
            request.Headers.TransferEncodingChunked = true;
        using var response = await fixture.Client.SendAsync(request);
        await Api.ErrorAsync(response, HttpStatusCode.RequestEntityTooLarge, "too large");
        Assert.Equal(before, await fixture.SnapshotAsync());
    }

    public static TheoryData<string, string, string> UnknownIds => new()
    {
        { "GET", "/api/v1/vms/ghost-vm", "no VM named ghost-vm" },
        { "POST", "/api/v1/vms/ghost-vm/start", "no VM named ghost-vm" },
        { "POST", "/api/v1/vms/ghost-vm/stop", "no VM named ghost-vm" },
        { "POST", "/api/v1/vms/ghost-vm/reboot", "no VM named ghost-vm" },
        { "POST", "/api/v1/vms/ghost-vm/migrate", "no VM named ghost-vm" },
        { "POST", "/api/v1/vms/ghost-vm/failover", "no VM named ghost-vm" },
        { "DELETE", "/api/v1/vms/ghost-vm", "no VM named ghost-vm" },
        { "GET", "/api/v1/hosts/ghost-host", "no host named ghost-host" },
        { "POST", "/api/v1/hosts/ghost-host/evacuate", "no host named ghost-host" },
        { "GET", "/api/v1/jobs/999999", "no job 999999" },
        // Names no record can have: control characters, encoded slashes, over-long: still a 404, never a 500.
        { "GET", "/api/v1/vms/a%01b", "no VM named" },
        // Routing leaves an encoded slash encoded: the name is a%2Fb, which no VM has.
        { "GET", "/api/v1/vms/a%2Fb", "no VM named a%2Fb" },
        { "POST", "/api/v1/vms/a%01b/start", "no VM named" },
        { "GET", "/api/v1/hosts/%7F", "no host named" },
        { "GET", "/api/v1/jobs/%0A", "no job" },
        { "GET", "/api/v1/jobs/" + "1234567890" + "1234567890" + "1234567890" + "1234567890", "no job" },
    };

    [Theory]
    [MemberData(nameof(UnknownIds))]
    public async Task An_unknown_id_is_a_404_naming_it(string method, string path, string reason)
    {
        var before = await fixture.SnapshotAsync();
        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = method == "GET" ? null : Api.Json("{}") };
        using var response = await fixture.Client.SendAsync(request);
        await Api.ErrorAsync(response, HttpStatusCode.NotFound, reason);
        Assert.Equal(before, await fixture.SnapshotAsync());
    }

    [Fact]
    public async Task A_NUL_in_the_path_is_refused_before_it_reaches_the_API()
    {
        var before = await fixture.SnapshotAsync();
        using var response = await fixture.Client.PostAsync("/api/v1/vms/a%00b/start", null);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(before, await fixture.SnapshotAsync());
    }

    [Fact]
    public async Task An_unknown_route_or_method_is_refused_with_a_JSON_reason()
    {
        using (var response = await fixture.Client.GetAsync("/api/v1/no-such-route"))
            await Api.ErrorAsync(response, HttpStatusCode.NotFound, "no such route");
        using (var response = await fixture.Client.PutAsync("/api/v1/vms", Api.Json(ValidVm)))
            await Api.ErrorAsync(response, HttpStatusCode.MethodNotAllowed, "PUT");
    }

    [Fact]
    public async Task Migrating_to_a_host_name_that_cannot_exist_is_a_404()
    {
        await fixture.State.Store.PutAsync("vms/vm-migr2", System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(TestRecords.Vm("vm-migr2", host: null),
            Model.ControlJsonContext.Default.VmRecord));
        var before = await fixture.SnapshotAsync();
        using var response = await fixture.Client.PostAsync("/api/v1/vms/vm-migr2/migrate", Api.Json("""{"to":"a\u0001b"}"""));
        await Api.ErrorAsync(response, HttpStatusCode.NotFound, "no host named");
        Assert.Equal(before, await fixture.SnapshotAsync());
    }

    [Fact]
    public async Task A_very_long_name_in_the_path_is_a_404_not_a_500()
    {
        var before = await fixture.SnapshotAsync();
        using var response = await fixture.Client.GetAsync("/api/v1/vms/" + new string('a', 5000));
        await Api.ErrorAsync(response, HttpStatusCode.NotFound, "no VM named");
        Assert.Equal(before, await fixture.SnapshotAsync());
    }

    [Fact]
    public async Task Migrating_to_an_unknown_host_is_a_404_naming_it()
    {
        await fixture.State.Store.PutAsync("vms/vm-migr", System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(TestRecords.Vm("vm-migr", host: null),
            Model.ControlJsonContext.Default.VmRecord));
        var before = await fixture.SnapshotAsync();
        using var response = await fixture.Client.PostAsync("/api/v1/vms/vm-migr/migrate", Api.Json("""{"to":"ghost-host"}"""));
        await Api.ErrorAsync(response, HttpStatusCode.NotFound, "no host named ghost-host");
        Assert.Equal(before, await fixture.SnapshotAsync());
    }

    [Theory]
    [InlineData("/api/v1/hosts", """{"name":"cpu-9","apiUrl":"{url}"}""")]
    [InlineData("/api/v1/disk-servers", """{"name":"disk-9","apiUrl":"{url}","shelf":9}""")]
    public async Task Registering_a_server_whose_API_does_not_answer_is_a_502_naming_the_URL(string path, string body)
    {
        var url = $"http://127.0.0.1:{ClosedPort()}";
        var before = await fixture.SnapshotAsync();
        using var response = await fixture.Client.PostAsync(path, Api.Json(body.Replace("{url}", url, StringComparison.Ordinal)));
        await Api.ErrorAsync(response, HttpStatusCode.BadGateway, url);
        Assert.Equal(before, await fixture.SnapshotAsync());
    }

    [Theory]
    [InlineData("/api/v1/hosts", """{"name":"cpu-8","apiUrl":"{url}"}""")]
    [InlineData("/api/v1/disk-servers", """{"name":"disk-8","apiUrl":"{url}","shelf":8}""")]
    public async Task Registering_a_server_whose_API_answers_something_else_is_a_502_naming_the_URL(string path, string body)
    {
        // The controller's own root: it answers, with an HTML page instead of a host or disk daemon's JSON.
        var url = fixture.Controller.BaseAddress.ToString().TrimEnd('/');
        var before = await fixture.SnapshotAsync();
        using var response = await fixture.Client.PostAsync(path, Api.Json(body.Replace("{url}", url, StringComparison.Ordinal)));
        await Api.ErrorAsync(response, HttpStatusCode.BadGateway, url);
        Assert.Equal(before, await fixture.SnapshotAsync());
    }

    [Theory]
    [InlineData("/api/v1/capacity")]
    [InlineData("/api/v1/capacity?cpus=1")]
    [InlineData("/api/v1/capacity?memoryMiB=512")]
    [InlineData("/api/v1/capacity?cpus=0&memoryMiB=512")]
    [InlineData("/api/v1/capacity?cpus=1&memoryMiB=-5")]
    public async Task Capacity_without_its_parameters_is_a_400_with_an_example(string path)
    {
        using var response = await fixture.Client.GetAsync(path);
        await Api.ErrorAsync(response, HttpStatusCode.BadRequest, "/api/v1/capacity?cpus=1&memoryMiB=512");
    }

    [Theory]
    [InlineData("/api/v1/capacity?cpus=one&memoryMiB=512", "cpus")]
    [InlineData("/api/v1/capacity?cpus=1&memoryMiB=512&diskBytes=lots", "diskBytes")]
    [InlineData("/api/v1/capacity?cpus=1&memoryMiB=512&diskBytes=-1", "diskBytes")]
    public async Task Capacity_with_a_parameter_that_is_not_a_number_is_a_400_naming_it(string path, string parameter)
    {
        using var response = await fixture.Client.GetAsync(path);
        await Api.ErrorAsync(response, HttpStatusCode.BadRequest, parameter);
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
