using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;

namespace XenAoe.Nbd;

internal sealed partial class NbdConnection
{
    private const int SendBufferLength = 64 * 1024;

    /// <summary>
    /// Read data up to this size is copied into the send buffer behind its header, so replies completed together leave in one
    /// send (a 4 KiB copy costs far less than a syscall); larger data is sent from its own buffer.
    /// </summary>
    private const int CopyLimit = 16 * 1024;

    /// <summary>Room for one reply header: a structured error chunk with up to 256 characters of message is at most 802 bytes.</summary>
    private const int MaxReplyHeaderLength = 1024;

    private const int MaxMessageChars = 256;

    private readonly ConcurrentQueue<NbdRequest> _replies = new();
    // Owned by the one running sender: requests whose replies sit in the send buffer, released once it is sent.
    private readonly List<NbdRequest> _batch = [];
    private byte[] _sendBuffer;
    // 1 while a sender runs. Whoever queues a reply and finds it 0 becomes the sender, so there is no dedicated writer task and
    // no wake-up when the socket keeps up; replies that arrive while a send is in progress ride along in the next one.
    private int _sending;
    private volatile bool _sendFailed;

    // 1 while the receive loop parses requests it already holds: replies queued meanwhile wait, and leave together in one send
    // when the loop next has to wait (for the socket or the budget). With requests run inline this batches a whole receive's
    // worth of replies (strace, fio 4k QD32 inline: 8.6 replies per send). Set and cleared only by the receive loop.
    private int _corked;

    /// <summary>Queues a finished request's reply; from any thread. The reply goes out in completion order, not request order.</summary>
    public void QueueReply(NbdRequest request)
    {
        _replies.Enqueue(request);
        if (Volatile.Read(ref _corked) == 0 && Interlocked.CompareExchange(ref _sending, 1, 0) == 0)
            _ = SendRepliesAsync();
    }

    /// <summary>Releases replies held while corked; full fences on both sides so a reply queued concurrently is never stranded.</summary>
    private void Uncork()
    {
        if (Interlocked.Exchange(ref _corked, 0) == 0)
            return;
        if (!_replies.IsEmpty && Interlocked.CompareExchange(ref _sending, 1, 0) == 0)
            _ = SendRepliesAsync();
    }

    private async Task SendRepliesAsync()
    {
        while (true)
        {
            var used = 0;
            while (_replies.TryDequeue(out var request))
            {
                var data = request.Error == 0 && request.Header.Type == NbdProtocol.CmdRead ? (int)request.Header.Length : 0;
                var copy = data <= CopyLimit;
                if (SendBufferLength - used < MaxReplyHeaderLength + (copy ? data : 0))
                {
                    await FlushAsync(used).ConfigureAwait(false);
                    used = 0;
                }
                used += PutReply(used, request);
                if (copy)
                {
                    request.Buffer.AsSpan(0, data).CopyTo(_sendBuffer.AsSpan(used));
                    used += data;
                    _batch.Add(request);
                }
                else
                {
                    await FlushAsync(used).ConfigureAwait(false);
                    used = 0;
                    await SendAsync(request.Buffer.AsMemory(0, data)).ConfigureAwait(false);
                    Release(request);
                }
            }
            if (used > 0)
                await FlushAsync(used).ConfigureAwait(false);
            Volatile.Write(ref _sending, 0);
            // A reply queued after the last TryDequeue but before the flag cleared saw a sender running and did not start one.
            if (_replies.IsEmpty || Interlocked.CompareExchange(ref _sending, 1, 0) != 0)
                return;
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask FlushAsync(int used)
    {
        await SendAsync(_sendBuffer.AsMemory(0, used)).ConfigureAwait(false);
        foreach (var request in _batch)
            Release(request);
        _batch.Clear();
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask SendAsync(ReadOnlyMemory<byte> data)
    {
        if (_sendFailed)
            return;
        try
        {
            await SendDirectAsync(data).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The peer is gone or the connection is being torn down: later replies are dropped, their buffers still released.
            _sendFailed = true;
            Abort(e is SocketException s ? $"sending a reply failed: {s.SocketErrorCode}" : "aborted while sending replies");
        }
    }

    /// <summary>Writes the reply header (and error payload) of <paramref name="request"/> at <paramref name="at"/>; returns its length.</summary>
    private int PutReply(int at, NbdRequest request)
    {
        var span = _sendBuffer.AsSpan(at);
        ref readonly var header = ref request.Header;
        if (request.Error == 0)
        {
            if (_structured && header.Type == NbdProtocol.CmdRead)
            {
                // One OFFSET_DATA chunk with DONE: the data is all in memory, so no error can follow it.
                NbdWriter.WriteStructuredHeader(span, NbdProtocol.ReplyFlagDone, NbdProtocol.ReplyTypeOffsetData, header.Cookie, 8 + (int)header.Length);
                BinaryPrimitives.WriteUInt64BigEndian(span[NbdProtocol.StructuredReplyHeaderLength..], header.Offset);
                return NbdProtocol.StructuredReplyHeaderLength + 8;
            }
            NbdWriter.WriteSimpleReply(span, 0, header.Cookie);
            return NbdProtocol.SimpleReplyLength;
        }
        if (!_structured)
        {
            NbdWriter.WriteSimpleReply(span, request.Error, header.Cookie);
            return NbdProtocol.SimpleReplyLength;
        }
        var payload = span[NbdProtocol.StructuredReplyHeaderLength..];
        var message = (request.Message ?? "").AsSpan();
        if (message.Length > MaxMessageChars)
            message = message[..MaxMessageChars];
        BinaryPrimitives.WriteUInt32BigEndian(payload, request.Error);
        var messageLength = Encoding.UTF8.GetBytes(message, payload[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(payload[4..], (ushort)messageLength);
        var length = 6 + messageLength;
        var type = NbdProtocol.ReplyTypeError;
        if (request.DeviceFailed && header.Type is NbdProtocol.CmdRead or NbdProtocol.CmdWrite or NbdProtocol.CmdTrim or NbdProtocol.CmdWriteZeroes)
        {
            // The device does not say where it failed: the request's own offset claims no partial success.
            type = NbdProtocol.ReplyTypeErrorOffset;
            BinaryPrimitives.WriteUInt64BigEndian(payload[length..], header.Offset);
            length += 8;
        }
        NbdWriter.WriteStructuredHeader(span, NbdProtocol.ReplyFlagDone, type, header.Cookie, length);
        return NbdProtocol.StructuredReplyHeaderLength + length;
    }
}
