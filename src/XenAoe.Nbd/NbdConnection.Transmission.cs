using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace XenAoe.Nbd;

internal sealed partial class NbdConnection
{
    /// <summary>Write payloads up to this size are received through the receive buffer (one recv often brings several requests).</summary>
    private const int SmallPayloadLength = 64 * 1024;

    // Guards the in-flight budget and the request pool; taken twice per request (reserve, release), never across an await.
    private readonly Lock _budgetLock = new();
    private readonly Stack<NbdRequest> _requestPool;
    private int _inFlight;
    private long _inFlightBytes;
    private TaskCompletionSource? _budgetReleased;

    /// <summary>
    /// The receive loop: parses requests, refuses bad ones without touching the device, and dispatches the rest. It stops reading
    /// the socket while the connection's in-flight budget is used up. Returns on DISC, end of stream or a protocol error.
    /// </summary>
    private async Task TransmitAsync()
    {
        try
        {
            await ReceiveRequestsAsync().ConfigureAwait(false);
        }
        finally
        {
            // Replies held back while the loop was parsing must go out (or be dropped) for the connection to drain.
            Uncork();
        }
    }

    private async Task ReceiveRequestsAsync()
    {
        var size = Device.Size;
        var readOnly = Device.ReadOnly;
        var inline = _options.RunRequestsInline;
        while (true)
        {
            if (!await FillAsync(NbdProtocol.RequestLength).ConfigureAwait(false))
            {
                if (Unparsed == 0)
                    SetCloseReason("client closed the connection without NBD_CMD_DISC", protocolError: false);
                else
                    ProtocolError($"connection closed inside a request header ({Unparsed} of {NbdProtocol.RequestLength} bytes)");
                return;
            }
            // Every wait for the socket or the budget uncorks (FillSlowAsync, ReserveSlowAsync, ReceivePayloadAsync).
            Volatile.Write(ref _corked, 1);
            NbdRequestHeader.TryRead(_receiveBuffer.AsSpan(_head, Unparsed), out var header);
            if (header.Magic != NbdProtocol.RequestMagic)
            {
                ProtocolError($"bad request magic 0x{header.Magic:x8}");
                return;
            }
            _head += NbdProtocol.RequestLength;
            NbdMetrics.Requests.Add(1);
            if (header.Type == NbdProtocol.CmdDisconnect)
            {
                SetCloseReason("client disconnected (NBD_CMD_DISC)", protocolError: false);
                return;
            }
            var isWrite = header.Type == NbdProtocol.CmdWrite;
            if (isWrite && header.Length > NbdServer.MaxPayloadLength)
            {
                // Its payload cannot be skipped at a reasonable cost, and a client that ignores the advertised maximum is not trusted.
                ProtocolError($"write of {header.Length} bytes exceeds the {NbdServer.MaxPayloadLength}-byte maximum payload");
                return;
            }
            var error = NbdErrors.Check(header, size, readOnly, out var message);
            var payload = isWrite || (error == 0 && header.Type == NbdProtocol.CmdRead) ? (int)header.Length : 0;
            if (!TryReserve(payload))
                await ReserveSlowAsync(payload).ConfigureAwait(false);
            var request = RentRequest();
            request.Header = header;
            request.Budget = payload;
            if (payload > 0)
                request.TakeBuffer(payload);
            if (isWrite && !await ReceivePayloadAsync(request.Buffer!, payload).ConfigureAwait(false))
            {
                ProtocolError($"connection closed inside the payload of a {payload}-byte write");
                Release(request);
                return;
            }
            if (error != 0)
            {
                NbdMetrics.RequestErrors.Add(1);
                request.Refuse(error, message);
                QueueReply(request);
            }
            else if (inline)
                request.Run();
            else
            {
                // A device call that completes synchronously (a file) would otherwise serialise the connection's requests.
                ThreadPool.UnsafeQueueUserWorkItem(request, preferLocal: false);
            }
        }
    }

    /// <summary>Receives a write payload into <paramref name="buffer"/>; false when the peer closed first.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> ReceivePayloadAsync(byte[] buffer, int length)
    {
        if (length <= SmallPayloadLength)
        {
            if (!await FillAsync(length).ConfigureAwait(false))
                return false;
            _receiveBuffer.AsSpan(_head, length).CopyTo(buffer);
            _head += length;
            return true;
        }
        // Large payloads go straight from the socket into their buffer, after whatever part the receive buffer already holds.
        Uncork();
        var done = Math.Min(Unparsed, length);
        _receiveBuffer.AsSpan(_head, done).CopyTo(buffer);
        _head += done;
        while (done < length)
        {
            var received = await _socket.ReceiveAsync(buffer.AsMemory(done, length - done), SocketFlags.None, _abort.Token).ConfigureAwait(false);
            if (received == 0)
                return false;
            done += received;
        }
        return true;
    }

    private bool TryReserve(int bytes)
    {
        lock (_budgetLock)
            return TryReserveLocked(bytes);
    }

    private bool TryReserveLocked(int bytes)
    {
        // One request always fits when nothing is in flight, whatever its size: MaxInFlightBytes >= MaxPayloadLength anyway.
        if (_inFlight >= _options.MaxInFlightRequests || (_inFlight > 0 && _inFlightBytes + bytes > _options.MaxInFlightBytes))
            return false;
        _inFlight++;
        _inFlightBytes += bytes;
        return true;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReserveSlowAsync(int bytes)
    {
        Uncork();
        while (true)
        {
            Task released;
            lock (_budgetLock)
            {
                if (TryReserveLocked(bytes))
                    return;
                _budgetReleased ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                released = _budgetReleased.Task;
            }
            await released.WaitAsync(_abort.Token).ConfigureAwait(false);
        }
    }

    /// <summary>Waits until every request taken in has been answered (or its reply dropped because the socket failed).</summary>
    private async Task DrainAsync()
    {
        while (true)
        {
            Task released;
            lock (_budgetLock)
            {
                if (_inFlight == 0)
                    return;
                _budgetReleased ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                released = _budgetReleased.Task;
            }
            await released.ConfigureAwait(false);
        }
    }

    private NbdRequest RentRequest()
    {
        lock (_budgetLock)
        {
            if (_requestPool.TryPop(out var request))
                return request;
        }
        return new NbdRequest(this);
    }

    /// <summary>Returns a request's buffer and the request itself, and gives its budget back (waking the receive loop if it waits).</summary>
    private void Release(NbdRequest request)
    {
        var bytes = request.Budget;
        request.Reset();
        TaskCompletionSource? released;
        lock (_budgetLock)
        {
            _requestPool.Push(request);
            _inFlight--;
            _inFlightBytes -= bytes;
            released = _budgetReleased;
            _budgetReleased = null;
        }
        released?.TrySetResult();
    }
}
