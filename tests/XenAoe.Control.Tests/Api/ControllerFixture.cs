using System.Net;
using System.Text;
using System.Text.Json;
using XenAoe.ControllerApiLoad;

namespace XenAoe.Control.Tests.Api;

/// <summary>One in-process controller per test class, with an authorised and an anonymous client.</summary>
public sealed class ControllerFixture : IAsyncLifetime
{
    private LoopbackController? _controller;

    public LoopbackController Controller => _controller ?? throw new InvalidOperationException("the controller is not started");

    public ControllerState State => Controller.State;

    public HttpClient Client { get; private set; } = null!;

    public HttpClient Anonymous { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _controller = await LoopbackController.StartAsync();
        Client = _controller.CreateClient(_controller.Token);
        Anonymous = _controller.CreateClient(token: null);
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        Anonymous.Dispose();
        if (_controller is not null)
            await _controller.DisposeAsync();
    }

    /// <summary>Every key in the store with its revision: equal before and after means a request changed nothing.</summary>
    public async Task<string> SnapshotAsync() =>
        string.Join('\n', (await State.Store.ListAsync("")).Select(e => $"{e.Key}@{e.Revision}"));
}

public static class Api
{
    public static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    /// <summary>Asserts the status and a JSON <c>{"error": ...}</c> body containing every fragment; returns the error.</summary>
    public static async Task<string> ErrorAsync(HttpResponseMessage response, HttpStatusCode status, params string[] fragments)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status} {status}, got {(int)response.StatusCode} with body: {body}");
        Assert.StartsWith("application/json", response.Content.Headers.ContentType?.MediaType ?? "(no content type)", StringComparison.Ordinal);
        using var document = JsonDocument.Parse(body);
        var error = document.RootElement.GetProperty("error").GetString() ?? "";
        foreach (var fragment in fragments)
            Assert.True(error.Contains(fragment, StringComparison.OrdinalIgnoreCase), $"expected the error to mention '{fragment}': {error}");
        return error;
    }

    public static async Task<JsonElement> OkAsync(HttpResponseMessage response, HttpStatusCode status = HttpStatusCode.OK)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status} {status}, got {(int)response.StatusCode} with body: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }
}
