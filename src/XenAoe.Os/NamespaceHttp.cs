using System.Net.Sockets;

namespace XenAoe.Os;

/// <summary>HTTP from this process to addresses that exist only inside a network namespace (a lab's VMs, its management network).</summary>
public static class NamespaceHttp
{
    /// <summary>
    /// An <see cref="HttpClient"/> whose connections are opened inside <paramref name="namespaceName"/>: each socket is created
    /// there (see <see cref="NetNamespace"/>) and keeps its namespace for its lifetime, so the client works from any thread.
    /// </summary>
    public static HttpClient Create(string namespaceName, TimeSpan timeout) => new(CreateHandler(namespaceName)) { Timeout = timeout };

    /// <summary>The handler of <see cref="Create"/>, for clients that build their own <see cref="HttpClient"/>.</summary>
    public static SocketsHttpHandler CreateHandler(string namespaceName) => new()
    {
        // Fresh connections each time: a pooled one may outlive a migrated VM's old network path.
        PooledConnectionLifetime = TimeSpan.Zero,
        ConnectCallback = async (context, ct) =>
        {
            var socket = NetNamespace.Invoke(namespaceName, () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
            try
            {
                socket.NoDelay = true;
                await socket.ConnectAsync(context.DnsEndPoint, ct).ConfigureAwait(false);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    };
}
