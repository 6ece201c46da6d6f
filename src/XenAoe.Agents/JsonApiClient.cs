using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace XenAoe.Agents;

/// <summary>A refusal as the server said it: the HTTP status and its reason (problem details' <c>detail</c>, or our <c>error</c>).</summary>
public sealed record ApiRefusal(int Status, string Message);

/// <summary>
/// The one JSON-over-HTTP client of the daemons' and the controller's APIs: a daemon is reached over its unix socket (a path)
/// or its management address (a URL, with the cluster's bearer token). One error model for every API:
/// <list type="bullet">
/// <item>a refusal (any non-2xx answer) is read once (problem details or <c>{"error": ...}</c>) and turned into the caller's
/// typed exception by the <c>refuse</c> function given at construction;</item>
/// <item>a server that cannot be reached is an <see cref="HttpRequestException"/> without a status; a request that outlives its
/// timeout is a <see cref="TimeoutException"/> naming the server and the path;</item>
/// <item>requests that are safe to repeat (reads, and writes the caller marks idempotent) are retried on a refused or reset
/// connection, up to <see cref="Retries"/> times with a short pause: a daemon restarting under systemd is back within that time,
/// and a dead one costs at most the pauses. Nothing is retried once the server has answered.</item>
/// </list>
/// Every response is disposed. Thread-safe; keep one per server.
/// </summary>
public sealed class JsonApiClient : IDisposable
{
    /// <summary>Extra attempts for idempotent requests whose connection failed.</summary>
    public const int Retries = 2;

    private static readonly TimeSpan RetryPause = TimeSpan.FromMilliseconds(200);
    private readonly HttpClient _http;
    private readonly Func<ApiRefusal, Exception> _refuse;
    private readonly string _peer;

    /// <param name="endpoint">A unix socket path, or a URL such as <c>http://10.77.0.21:7300</c>.</param>
    /// <param name="timeout">The longest a request may take unless the call's token ends it sooner.</param>
    /// <param name="token">The cluster's API token, sent as a bearer token to URLs (a unix socket needs none).</param>
    /// <param name="peer">What the server is, for messages ("the host daemon").</param>
    /// <param name="refuse">Makes the caller's exception from a refusal.</param>
    public JsonApiClient(string endpoint, TimeSpan timeout, string? token, string peer, Func<ApiRefusal, Exception> refuse, HttpMessageHandler? handler = null)
    {
        Endpoint = endpoint;
        Timeout = timeout;
        _peer = peer;
        _refuse = refuse;
        if (IsUrl(endpoint))
        {
            _http = new HttpClient(handler ?? new SocketsHttpHandler()) { BaseAddress = new Uri(endpoint.TrimEnd('/') + "/") };
            if (token is not null)
                _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }
        else
        {
            _http = new HttpClient(handler ?? UnixSocketHandler(endpoint)) { BaseAddress = new Uri("http://agent/") };
        }
        // Timeouts are per call (below), so that one client serves a heartbeat of a second and a copy of minutes.
        _http.Timeout = System.Threading.Timeout.InfiniteTimeSpan;
    }

    public string Endpoint { get; }

    public TimeSpan Timeout { get; }

    public static bool IsUrl(string endpoint) =>
        endpoint.StartsWith("http://", StringComparison.Ordinal) || endpoint.StartsWith("https://", StringComparison.Ordinal);

    /// <summary>GET, retried on a failed connection.</summary>
    public async Task<T> GetAsync<T>(string path, JsonTypeInfo<T> type, CancellationToken ct) =>
        (await SendCoreAsync(HttpMethod.Get, path, null, idempotent: true, type, ct).ConfigureAwait(false))!;

    /// <summary>GET; null when the server answers 404 (or 204: nothing to say).</summary>
    public Task<T?> GetOrNullAsync<T>(string path, JsonTypeInfo<T> type, CancellationToken ct) where T : class =>
        SendCoreAsync(HttpMethod.Get, path, null, idempotent: true, type, ct, nullOnNotFound: true);

    /// <summary>Sends <paramref name="body"/> (JSON; null: none) and reads the answer as <paramref name="result"/>.</summary>
    public async Task<TResult> SendAsync<TBody, TResult>(HttpMethod method, string path, TBody body, JsonTypeInfo<TBody> bodyType, JsonTypeInfo<TResult> result,
        bool idempotent, CancellationToken ct) =>
        (await SendCoreAsync(method, path, () => JsonContent.Create(body, bodyType), idempotent, result, ct).ConfigureAwait(false))!;

    /// <summary>Sends <paramref name="body"/> (null: none) and expects no answer body.</summary>
    public async Task SendAsync<TBody>(HttpMethod method, string path, TBody body, JsonTypeInfo<TBody> bodyType, bool idempotent, CancellationToken ct) =>
        await SendCoreAsync<object>(method, path, () => JsonContent.Create(body, bodyType), idempotent, result: null, ct).ConfigureAwait(false);

    /// <summary>Sends no body, reads <paramref name="result"/>.</summary>
    public async Task<TResult> SendAsync<TResult>(HttpMethod method, string path, JsonTypeInfo<TResult> result, bool idempotent, CancellationToken ct) =>
        (await SendCoreAsync(method, path, null, idempotent, result, ct).ConfigureAwait(false))!;

    /// <summary>Sends no body and expects no answer body.</summary>
    public async Task SendAsync(HttpMethod method, string path, bool idempotent, CancellationToken ct) =>
        await SendCoreAsync<object>(method, path, null, idempotent, result: null, ct).ConfigureAwait(false);

    /// <summary>Sends what <paramref name="content"/> makes (called again for each attempt; null: no body) and reads <paramref name="result"/>.</summary>
    public async Task<TResult> SendContentAsync<TResult>(HttpMethod method, string path, Func<HttpContent>? content, JsonTypeInfo<TResult> result,
        bool idempotent, CancellationToken ct) =>
        (await SendCoreAsync(method, path, content, idempotent, result, ct).ConfigureAwait(false))!;

    public void Dispose() => _http.Dispose();

    private async Task<T?> SendCoreAsync<T>(HttpMethod method, string path, Func<HttpContent>? body, bool idempotent, JsonTypeInfo<T>? result,
        CancellationToken ct, bool nullOnNotFound = false)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(Timeout);
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                using var request = new HttpRequestMessage(method, path) { Content = body?.Invoke() };
                using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, limit.Token).ConfigureAwait(false);
                if (nullOnNotFound && response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.NoContent)
                    return default;
                if (!response.IsSuccessStatusCode)
                    throw _refuse(await ReadRefusalAsync(response, limit.Token).ConfigureAwait(false));
                if (result is null)
                    return default;
                return await response.Content.ReadFromJsonAsync(result, limit.Token).ConfigureAwait(false)
                    ?? throw new InvalidDataException($"{_peer} at {Endpoint} sent an empty answer to {method} {path}");
            }
            catch (HttpRequestException e) when (idempotent && e.StatusCode is null && attempt < Retries && !limit.IsCancellationRequested)
            {
                // The connection was refused or reset before an answer: safe to repeat, and a restarting daemon is back soon.
                await Task.Delay(RetryPause, limit.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested && limit.IsCancellationRequested)
            {
                throw new TimeoutException($"{_peer} at {Endpoint} did not answer {method} {path} within {Timeout.TotalSeconds:0.#} s");
            }
        }
    }

    private async Task<ApiRefusal> ReadRefusalAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var status = (int)response.StatusCode;
        string? message = null;
        try
        {
            var body = await response.Content.ReadFromJsonAsync(RefusalJsonContext.Default.RefusalBody, ct).ConfigureAwait(false);
            message = body?.Error ?? body?.Detail ?? body?.Title;
        }
        catch (JsonException)
        {
            // Not a JSON body (a proxy's page, a crash): the status says what happened.
        }
        return new ApiRefusal(status, message ?? $"{_peer} at {Endpoint} answered {status} {response.ReasonPhrase}");
    }

    private static SocketsHttpHandler UnixSocketHandler(string path) => new()
    {
        ConnectCallback = async (_, ct) =>
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), ct).ConfigureAwait(false);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    };

    /// <summary>Our error body and RFC 9457 problem details share this reader.</summary>
    internal sealed record RefusalBody(string? Error, string? Title, string? Detail);
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(JsonApiClient.RefusalBody))]
internal sealed partial class RefusalJsonContext : JsonSerializerContext;
