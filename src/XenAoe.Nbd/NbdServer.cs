using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using XenAoe.Block;

namespace XenAoe.Nbd;

/// <summary>
/// An NBD server (fixed newstyle handshake, simple and structured replies) exporting <see cref="IBlockDevice"/>s by name over unix
/// sockets and TCP. Each connection keeps many requests in flight, answered in completion order. Exports can be added and removed
/// while serving; all members are thread-safe.
/// </summary>
public sealed class NbdServer : IAsyncDisposable
{
    /// <summary>Minimum block size advertised (NBD_INFO_BLOCK_SIZE): requests must be aligned to it.</summary>
    public const int MinimumBlockSize = IBlockDevice.SectorSize;

    /// <summary>Preferred block size advertised.</summary>
    public const int PreferredBlockSize = 4096;

    /// <summary>Largest read or write payload (32 MiB): larger reads are refused with EINVAL, larger writes end the connection.</summary>
    public const int MaxPayloadLength = 32 << 20;

    /// <summary>Largest option data accepted in the handshake; a longer option is answered NBD_REP_ERR_TOO_BIG and the client dropped.</summary>
    public const int MaxOptionLength = 64 * 1024;

    private readonly NbdServerOptions _options;
    private readonly ILogger _log;
    private readonly ConcurrentDictionary<string, NbdExport> _exports = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<NbdConnection, Task> _connections = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Socket> _listeners = [];
    private readonly List<Task> _acceptLoops = [];
    private readonly List<string> _socketFiles = [];
    private readonly List<EndPoint> _localEndPoints = [];
    private long _nextConnectionId;
    private long _activeConnections;
    private int _disposed;

    public NbdServer(ILogger? log = null)
        : this(new NbdServerOptions(), log)
    {
    }

    public NbdServer(NbdServerOptions options, ILogger? log = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _log = log ?? NullLogger.Instance;
    }

    /// <summary>Connections currently open, in the handshake or transmitting.</summary>
    public long ActiveConnections => Interlocked.Read(ref _activeConnections);

    /// <summary>The addresses listened on, with the port chosen by the system where port 0 was asked for.</summary>
    public IReadOnlyList<EndPoint> LocalEndPoints
    {
        get
        {
            lock (_listeners)
                return [.. _localEndPoints];
        }
    }

    /// <summary>
    /// Offers <paramref name="device"/> as <paramref name="name"/> ("" is the default export clients get without naming one).
    /// The server does not own the device: dispose it after <see cref="RemoveExportAsync"/> or after disposing the server.
    /// </summary>
    /// <exception cref="ArgumentException">The name is taken, or the name or description is longer than 4096 UTF-8 bytes.</exception>
    public void AddExport(string name, IBlockDevice device, string? description = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(device);
        if (Encoding.UTF8.GetByteCount(name) > NbdProtocol.MaxStringLength)
            throw new ArgumentException("export names are at most 4096 UTF-8 bytes", nameof(name));
        if (description is not null && Encoding.UTF8.GetByteCount(description) > NbdProtocol.MaxStringLength)
            throw new ArgumentException("descriptions are at most 4096 UTF-8 bytes", nameof(description));
        if (!_exports.TryAdd(name, new NbdExport(name, device, description)))
            throw new ArgumentException($"export '{name}' already exists", nameof(name));
    }

    /// <summary>
    /// Withdraws an export: new clients can no longer open it and the connections using it are disconnected. Requests they
    /// had in flight may still be running when this returns; use <see cref="RemoveExportAsync"/> before disposing the device.
    /// </summary>
    /// <returns>False when no export has that name.</returns>
    public bool RemoveExport(string name) => RemoveCore(name) is not null;

    /// <summary>Like <see cref="RemoveExport"/>, and completes once the disconnected clients' requests have all finished.</summary>
    public async Task<bool> RemoveExportAsync(string name)
    {
        var connections = RemoveCore(name);
        if (connections is null)
            return false;
        var tasks = connections.Select(c => _connections.TryGetValue(c, out var task) ? task : Task.CompletedTask);
        await Task.WhenAll(tasks).ConfigureAwait(false);
        return true;
    }

    private NbdConnection[]? RemoveCore(string name)
    {
        if (!_exports.TryRemove(name, out var export))
            return null;
        var connections = export.Remove();
        Log.ExportRemoved(_log, name, connections.Length);
        return connections;
    }

    /// <summary>
    /// Binds and listens on every endpoint (<see cref="UnixDomainSocketEndPoint"/> or <see cref="IPEndPoint"/>), then returns;
    /// connections are served in the background until <paramref name="ct"/> is cancelled or the server is disposed. A stale
    /// unix socket file (nobody accepting on it) is replaced; the socket files are deleted on dispose.
    /// </summary>
    /// <exception cref="SocketException">An address is in use or cannot be bound; nothing is left listening then.</exception>
    public Task StartAsync(IEnumerable<EndPoint> listen, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(listen);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var bound = new List<(Socket Socket, string? File)>();
        try
        {
            foreach (var endPoint in listen)
                bound.Add(Bind(endPoint));
        }
        catch
        {
            foreach (var (socket, file) in bound)
            {
                socket.Dispose();
                if (file is not null)
                    File.Delete(file);
            }
            throw;
        }
        if (ct.CanBeCanceled)
            ct.UnsafeRegister(static state => ((NbdServer)state!).Stop(), this);
        lock (_listeners)
        {
            foreach (var (socket, file) in bound)
            {
                _listeners.Add(socket);
                _localEndPoints.Add(socket.LocalEndPoint!);
                if (file is not null)
                    _socketFiles.Add(file);
                Log.Listening(_log, socket.LocalEndPoint!.ToString() ?? "");
                _acceptLoops.Add(AcceptLoopAsync(socket));
            }
        }
        return Task.CompletedTask;
    }

    private static (Socket Socket, string? File) Bind(EndPoint endPoint)
    {
        Socket socket;
        string? file = null;
        switch (endPoint)
        {
            case UnixDomainSocketEndPoint unix:
                file = unix.ToString();
                RemoveStaleSocketFile(unix, file);
                socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                break;
            case IPEndPoint ip:
                socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                break;
            default:
                throw new ArgumentException($"cannot listen on {endPoint.GetType().Name} {endPoint}; use a unix socket or IP endpoint", nameof(endPoint));
        }
        try
        {
            socket.Bind(endPoint);
            socket.Listen(512);
            return (socket, file);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static void RemoveStaleSocketFile(UnixDomainSocketEndPoint endPoint, string? path)
    {
        // Only a socket file is ever removed: a regular file at the path (a mistyped image path, say) makes the bind fail instead.
        if (string.IsNullOrEmpty(path) || path[0] == '\0' || !Interop.IsSocketFile(path))
            return;
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(endPoint);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            // Left behind by a process that died: nobody accepts on it.
            File.Delete(path);
            return;
        }
        throw new SocketException((int)SocketError.AddressAlreadyInUse);
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        var endPoint = listener.LocalEndPoint?.ToString() ?? "";
        while (!_stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception) when (_stopping.IsCancellationRequested)
            {
                // Stopping: the token or the disposed listener ended the accept.
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionAborted or SocketError.ConnectionReset)
            {
                // The client gave up before we accepted it.
                continue;
            }
            catch (Exception e)
            {
                Log.AcceptFailed(_log, endPoint, e);
                return;
            }
            if (Interlocked.Read(ref _activeConnections) >= _options.MaxConnections)
            {
                // Counted, not logged: a flood of connections would otherwise flood the log too.
                NbdMetrics.RefusedConnections.Add(1);
                socket.Dispose();
                continue;
            }
            if (socket.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)
            {
                // Replies are written whole; Nagle would hold back the last one of a burst for an ACK.
                socket.NoDelay = true;
            }
            var connection = new NbdConnection(this, socket, Interlocked.Increment(ref _nextConnectionId), _options, _log);
            Interlocked.Increment(ref _activeConnections);
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _connections[connection] = done.Task;
            _ = RunConnectionAsync(connection, done);
            if (_stopping.IsCancellationRequested)
                connection.Abort("the server is stopping");
        }
    }

    private static async Task RunConnectionAsync(NbdConnection connection, TaskCompletionSource done)
    {
        // Off the accept loop at once, so one client's handshake never delays the next accept.
        await Task.Yield();
        await connection.RunAsync().ConfigureAwait(false);
        done.SetResult();
    }

    internal NbdExport? FindExport(string name) => _exports.TryGetValue(name, out var export) ? export : null;

    internal NbdExport[] ExportSnapshot() => [.. _exports.Values.OrderBy(e => e.Name, StringComparer.Ordinal)];

    internal void OnConnectionClosed(NbdConnection connection)
    {
        _connections.TryRemove(connection, out _);
        Interlocked.Decrement(ref _activeConnections);
    }

    private void Stop()
    {
        try
        {
            _stopping.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Already disposed.
        }
        lock (_listeners)
        {
            foreach (var listener in _listeners)
                listener.Dispose();
        }
        foreach (var connection in _connections.Keys)
            connection.Abort("the server is stopping");
    }

    /// <summary>
    /// Stops listening, disconnects every client, and waits until their in-flight requests have finished (device calls see a
    /// cancelled token; one that ignores it is waited for). Exported devices are left open.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        Stop();
        Task[] loops;
        lock (_listeners)
            loops = [.. _acceptLoops];
        await Task.WhenAll(loops).ConfigureAwait(false);
        await Task.WhenAll(_connections.Values).ConfigureAwait(false);
        lock (_listeners)
        {
            foreach (var file in _socketFiles)
            {
                try
                {
                    File.Delete(file);
                }
                catch (IOException)
                {
                    // Best effort: a stale socket file is replaced at the next start anyway.
                }
            }
        }
    }
}
