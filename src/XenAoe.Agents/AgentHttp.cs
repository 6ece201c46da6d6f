using System.Net.Sockets;

namespace XenAoe.Agents;

/// <summary>The HTTP client every agent API client uses: a daemon is reached over its unix socket (a path) or its management address (a URL).</summary>
public static class AgentHttp
{
    public static bool IsUrl(string endpoint) =>
        endpoint.StartsWith("http://", StringComparison.Ordinal) || endpoint.StartsWith("https://", StringComparison.Ordinal);

    /// <param name="endpoint">A unix socket path, or a URL such as <c>http://10.77.0.21:7300</c>.</param>
    /// <param name="token">The cluster's API token, sent as a bearer token to URLs (a unix socket needs none).</param>
    public static HttpClient Create(string endpoint, TimeSpan timeout, string? token = null)
    {
        if (IsUrl(endpoint))
        {
            var http = new HttpClient { BaseAddress = new Uri(endpoint.TrimEnd('/') + "/"), Timeout = timeout };
            if (token is not null)
                http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
            return http;
        }
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(endpoint), ct).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        return new HttpClient(handler) { BaseAddress = new Uri("http://agent/"), Timeout = timeout };
    }
}
