using System.Buffers;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using XenAoe.Block;

namespace XenAoe.Nbd;

/// <summary>
/// One client: the handshake, then a receive loop that parses requests and dispatches them, and a sender that writes replies
/// in completion order. Partial files: Handshake, Transmission (receive loop and budget), Replies (the sender).
/// </summary>
internal sealed partial class NbdConnection
{
    private readonly NbdServer _server;
    private readonly Socket _socket;
    private readonly NbdServerOptions _options;
    private readonly ILogger _log;
    // Never disposed: it has no timer, and Abort may race with the end of RunAsync (export removal, server shutdown).
    private readonly CancellationTokenSource _abort = new();
    private readonly string _remote;
    private readonly Lock _closeLock = new();

    // Receive buffer: bytes [_head, _tail) arrived and are not parsed yet. Holds a whole option (header + 64 KiB) during the
    // handshake; in transmission one receive usually brings several request headers and small write payloads.
    private byte[] _receiveBuffer;
    private int _head;
    private int _tail;

    private NbdExport? _export;
    private string? _closeReason;
    private bool _closedByProtocolError;
    private int _deviceErrors;

    public NbdConnection(NbdServer server, Socket socket, long id, NbdServerOptions options, ILogger log)
    {
        _server = server;
        _socket = socket;
        _options = options;
        _log = log;
        Id = id;
        _remote = socket.RemoteEndPoint is { } remote && remote.ToString() is { Length: > 0 } text ? text : "unix socket";
        _receiveBuffer = ArrayPool<byte>.Shared.Rent(NbdProtocol.OptionHeaderLength + NbdServer.MaxOptionLength);
        _sendBuffer = ArrayPool<byte>.Shared.Rent(SendBufferLength);
        _requestPool = new Stack<NbdRequest>(options.MaxInFlightRequests);
    }

    public long Id { get; }

    /// <summary>The device of the chosen export; only read once transmission started.</summary>
    public IBlockDevice Device => _export!.Device;

    /// <summary>Cancelled when the connection is being torn down; passed to every device call.</summary>
    public CancellationToken Aborted => _abort.Token;

    /// <summary>Runs the connection to its end; never throws.</summary>
    public async Task RunAsync()
    {
        NbdMetrics.Connections.Add(1);
        try
        {
            NbdExport? export;
            using (var handshakeTimeout = new CancellationTokenSource(_options.HandshakeTimeout, _options.TimeProvider))
            using (handshakeTimeout.Token.UnsafeRegister(static state =>
                ((NbdConnection)state!).Abort("no export chosen within the handshake timeout", protocolError: true), this))
            {
                export = await HandshakeAsync().ConfigureAwait(false);
            }
            if (export is null)
                return;
            if (!export.Attach(this))
            {
                SetCloseReason("its export was removed", protocolError: false);
                return;
            }
            _export = export;
            Log.Opened(_log, Id, _remote, export.Name, _structured);
            try
            {
                await TransmitAsync().ConfigureAwait(false);
            }
            finally
            {
                // Requests already dispatched finish (the spec asks a server to answer them before closing after DISC) or, when
                // aborted, see the cancelled token and fail; either way their buffers come back before the socket closes.
                await DrainAsync().ConfigureAwait(false);
                export.Detach(this);
            }
        }
        catch (OperationCanceledException) when (_abort.IsCancellationRequested)
        {
            // Abort already recorded why.
            SetCloseReason("aborted", protocolError: false);
        }
        catch (SocketException e)
        {
            SetCloseReason($"socket error {e.SocketErrorCode}", protocolError: false);
        }
        catch (Exception e)
        {
            // A bug rather than a client's doing: log it with the stack, keep the server and other connections running.
            SetCloseReason($"internal error: {e}", protocolError: true);
        }
        finally
        {
            Close();
        }
    }

    /// <summary>Tears the connection down from outside (server shutdown, export removal, handshake timeout).</summary>
    public void Abort(string reason, bool protocolError = false)
    {
        SetCloseReason(reason, protocolError);
        try
        {
            _abort.Cancel();
        }
        catch (AggregateException)
        {
            // A cancellation callback threw; the connection is going away regardless.
        }
    }

    /// <summary>Called by a request the device failed; logs the first failure of the connection, counts the rest.</summary>
    public void OnDeviceError(Exception e)
    {
        NbdMetrics.RequestErrors.Add(1);
        if (Interlocked.Increment(ref _deviceErrors) == 1 && e is not OperationCanceledException)
            Log.DeviceError(_log, Id, _export?.Name ?? "", e);
    }

    private void ProtocolError(string reason)
    {
        NbdMetrics.ProtocolErrors.Add(1);
        SetCloseReason(reason, protocolError: true);
    }

    private void SetCloseReason(string reason, bool protocolError)
    {
        lock (_closeLock)
        {
            if (_closeReason is not null)
                return;
            _closeReason = reason;
            _closedByProtocolError = protocolError;
        }
    }

    private void Close()
    {
        SetCloseReason("closed", protocolError: false);
        if (_closedByProtocolError)
            Log.ProtocolError(_log, Id, _remote, _closeReason!);
        else
            Log.Closed(_log, Id, _remote, _closeReason!);
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
            // The peer already reset the connection.
        }
        catch (ObjectDisposedException)
        {
            // Closed by the server's shutdown.
        }
        _socket.Dispose();
        _abort.Cancel();
        ArrayPool<byte>.Shared.Return(_receiveBuffer);
        ArrayPool<byte>.Shared.Return(_sendBuffer);
        _receiveBuffer = [];
        _sendBuffer = [];
        _server.OnConnectionClosed(this);
    }

    /// <summary>Makes at least <paramref name="count"/> unparsed bytes available; false when the peer closed first.</summary>
    private ValueTask<bool> FillAsync(int count) =>
        _tail - _head >= count ? ValueTask.FromResult(true) : FillSlowAsync(count);

    // Pooled: the receive loop waits here for every burst of requests, and these ValueTasks are always awaited.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> FillSlowAsync(int count)
    {
        Uncork();
        // Move the unparsed bytes (less than one request) to the front, so each receive has the whole buffer to fill and takes
        // in as many pipelined requests as the socket holds.
        if (_head > 0)
        {
            _receiveBuffer.AsSpan(_head, _tail - _head).CopyTo(_receiveBuffer);
            _tail -= _head;
            _head = 0;
        }
        while (_tail - _head < count)
        {
            var received = await _socket.ReceiveAsync(_receiveBuffer.AsMemory(_tail), SocketFlags.None, _abort.Token).ConfigureAwait(false);
            if (received == 0)
                return false;
            _tail += received;
        }
        return true;
    }

    /// <summary>Bytes received but not parsed: a peer that closed mid-message leaves some.</summary>
    private int Unparsed => _tail - _head;

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask SendDirectAsync(ReadOnlyMemory<byte> data)
    {
        while (!data.IsEmpty)
        {
            var sent = await _socket.SendAsync(data, SocketFlags.None, _abort.Token).ConfigureAwait(false);
            data = data[sent..];
        }
    }
}
