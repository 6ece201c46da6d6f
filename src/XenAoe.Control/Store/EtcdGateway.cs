using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json.Nodes;

namespace XenAoe.Control.Store;

/// <summary>
/// POSTs JSON to etcd's v3 gateway (<c>/v3/...</c>) on a list of members, moving to the next member when one does not
/// answer (connection refused, timeout, 5xx such as "no leader"), so a dead member never stops the store. Thread-safe.
/// </summary>
/// <remarks>
/// A write whose member died after applying it but before answering is retried on the next member: a compare-and-swap then
/// fails with a conflict (its own write) and an unconditional put is applied twice with the same value. Callers that need
/// exactly-once effects use compares.
/// </remarks>
internal sealed class EtcdGateway : IDisposable
{
    private readonly HttpClient _http;
    private readonly Uri[] _endpoints;
    private readonly TimeSpan _requestTimeout;
    private int _current;

    public EtcdGateway(IReadOnlyList<Uri> endpoints, TimeSpan requestTimeout)
    {
        if (endpoints.Count == 0)
            throw new ArgumentException("etcd needs at least one member endpoint.", nameof(endpoints));
        _endpoints = [.. endpoints];
        _requestTimeout = requestTimeout;
        // A killed member refuses at once; a hung one is given a short connect timeout before the next is tried.
        _http = new HttpClient(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(1), PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
    }

    public IReadOnlyList<Uri> Endpoints => _endpoints;

    /// <summary>Posts <paramref name="body"/> to <paramref name="path"/> on the first member that answers; returns its JSON.</summary>
    public async Task<JsonObject> PostAsync(string path, JsonObject body, CancellationToken ct)
    {
        var failures = new List<string>();
        var start = Volatile.Read(ref _current);
        for (var i = 0; i < _endpoints.Length; i++)
        {
            var index = (start + i) % _endpoints.Length;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(_requestTimeout);
            try
            {
                using var response = await _http.PostAsync(new Uri(_endpoints[index], path), JsonContent.Create(body), timeout.Token).ConfigureAwait(false);
                var text = await response.Content.ReadAsStringAsync(timeout.Token).ConfigureAwait(false);
                if ((int)response.StatusCode >= 500)
                {
                    failures.Add($"{_endpoints[index]}: HTTP {(int)response.StatusCode} {text.Trim()}");
                    continue;
                }
                if (!response.IsSuccessStatusCode)
                    throw new StoreUnavailableException($"etcd {_endpoints[index]}{path.TrimStart('/')} refused the request: HTTP {(int)response.StatusCode} {text.Trim()}");
                Volatile.Write(ref _current, index);
                return JsonNode.Parse(text) as JsonObject ?? throw new StoreUnavailableException($"etcd {_endpoints[index]} answered {path} with no JSON object: {text}");
            }
            catch (Exception e) when (e is HttpRequestException or SocketException || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                // This member is down or slow: try the next one.
                failures.Add($"{_endpoints[index]}: {e.Message}");
            }
        }
        throw new StoreUnavailableException($"No etcd member answered {path}: {string.Join("; ", failures)}");
    }

    /// <summary>Opens a streaming POST (watch, keep-alive) on the next member from <paramref name="attempt"/>; the caller reads and disposes.</summary>
    public async Task<(HttpResponseMessage Response, Uri Endpoint)> OpenStreamAsync(string path, JsonObject body, int attempt, CancellationToken ct)
    {
        var endpoint = _endpoints[(Volatile.Read(ref _current) + attempt) % _endpoints.Length];
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(endpoint, path)) { Content = JsonContent.Create(body) };
        var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            response.Dispose();
            throw new HttpRequestException($"etcd {endpoint} answered {path} with HTTP {(int)response.StatusCode}: {text.Trim()}");
        }
        return (response, endpoint);
    }

    public void Dispose() => _http.Dispose();

    public static long Int64(JsonNode? node) => node switch
    {
        null => 0,
        JsonValue v when v.TryGetValue(out string? s) => long.Parse(s, System.Globalization.CultureInfo.InvariantCulture),
        JsonValue v => v.GetValue<long>(),
        _ => 0,
    };
}
