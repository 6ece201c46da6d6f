using System.Net;
using System.Text.Json;

namespace XenAoe.Control.Tests.Api;

[Trait("Category", "Integration")]
public sealed class ControllerApiAuthTests(ControllerFixture fixture) : IClassFixture<ControllerFixture>
{
    public static TheoryData<string, string> ProtectedCalls => new()
    {
        { "GET", "/api/v1/hosts" },
        { "POST", "/api/v1/hosts" },
        { "GET", "/api/v1/hosts/cpu-1" },
        { "POST", "/api/v1/hosts/cpu-1/evacuate" },
        { "GET", "/api/v1/disk-servers" },
        { "POST", "/api/v1/disk-servers" },
        { "GET", "/api/v1/vms" },
        { "POST", "/api/v1/vms" },
        { "GET", "/api/v1/vms/vm-1" },
        { "POST", "/api/v1/vms/vm-1/start" },
        { "POST", "/api/v1/vms/vm-1/stop" },
        { "POST", "/api/v1/vms/vm-1/reboot" },
        { "POST", "/api/v1/vms/vm-1/migrate" },
        { "POST", "/api/v1/vms/vm-1/failover" },
        { "DELETE", "/api/v1/vms/vm-1" },
        { "GET", "/api/v1/jobs" },
        { "GET", "/api/v1/jobs/000001" },
        { "GET", "/api/v1/capacity?cpus=1&memoryMiB=512" },
        { "DELETE", "/api/v1/hosts/cpu-1" },
        { "DELETE", "/api/v1/disk-servers/disk-1" },
        { "GET", "/api/v1/cluster" },
        { "POST", "/api/v1/cluster" },
        { "GET", "/api/v1/join-tokens" },
        { "POST", "/api/v1/join-tokens" },
        { "DELETE", "/api/v1/join-tokens/abcdef" },
        { "GET", "/api/v1/no-such-route" },
        // Routing matches paths in any letter case: so must the token check.
        { "GET", "/API/V1/VMS" },
        { "GET", "/Api/v1/jobs" },
    };

    [Theory]
    [MemberData(nameof(ProtectedCalls))]
    public async Task Every_api_call_but_health_and_join_without_a_token_is_401_naming_the_bearer_token(string method, string path)
    {
        var before = await fixture.SnapshotAsync();
        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = method == "GET" ? null : Api.Json("{}") };
        using var response = await fixture.Anonymous.SendAsync(request);
        await Api.ErrorAsync(response, HttpStatusCode.Unauthorized, "bearer token");
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.ToString());
        Assert.Equal(before, await fixture.SnapshotAsync());
    }

    [Theory]
    [InlineData("Bearer wrong-token-of-enough-length")]
    [InlineData("Bearer ")]
    [InlineData("Basic dXNlcjpwYXNz")]
    [InlineData("bearer {token}x")]
    [InlineData("Bearer {token}x")]
    public async Task A_wrong_token_is_401(string authorization)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/v1/vms");
        request.Headers.TryAddWithoutValidation("Authorization", authorization.Replace("{token}", fixture.Controller.Token, StringComparison.Ordinal));
        using var response = await fixture.Anonymous.SendAsync(request);
        await Api.ErrorAsync(response, HttpStatusCode.Unauthorized, "bearer token");
    }

    [Fact]
    public async Task The_right_token_lists_the_inventory()
    {
        foreach (var path in new[] { "/api/v1/hosts", "/api/v1/disk-servers", "/api/v1/vms", "/api/v1/jobs" })
        {
            var list = await Api.OkAsync(await fixture.Client.GetAsync(path));
            Assert.Equal(JsonValueKind.Array, list.ValueKind);
        }
    }

    [Fact]
    public async Task Health_answers_without_a_token_and_says_this_controller_leads()
    {
        var health = await Api.OkAsync(await fixture.Anonymous.GetAsync("/api/v1/health"));
        Assert.Equal("loopback-controller", health.GetProperty("name").GetString());
        Assert.True(health.GetProperty("leader").GetBoolean());
        Assert.Equal("sqlite", health.GetProperty("store").GetString());
    }

    [Fact]
    public async Task The_OpenAPI_document_is_valid_JSON_listing_the_main_routes()
    {
        using var response = await fixture.Anonymous.GetAsync("/openapi/v1.json");
        var document = await Api.OkAsync(response);
        var paths = document.GetProperty("paths");
        foreach (var route in new[] { "/api/v1/health", "/api/v1/hosts", "/api/v1/disk-servers", "/api/v1/vms", "/api/v1/vms/{name}", "/api/v1/vms/{name}/start",
            "/api/v1/vms/{name}/migrate", "/api/v1/jobs", "/api/v1/jobs/{id}", "/api/v1/capacity" })
            Assert.True(paths.TryGetProperty(route, out _), $"expected {route} in the OpenAPI paths: {string.Join(", ", paths.EnumerateObject().Select(p => p.Name))}");
        Assert.True(paths.GetProperty("/api/v1/vms").TryGetProperty("post", out _), "expected POST /api/v1/vms in the OpenAPI document");
    }

    [Fact]
    public async Task The_dashboard_page_is_served_at_the_root_without_a_token()
    {
        using var response = await fixture.Anonymous.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("<title>XenAoE</title>", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
