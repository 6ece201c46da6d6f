using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace XenAoe.Nbd.Tests.Infrastructure;

public sealed record OptionReply(uint Option, uint Type, byte[] Data)
{
    public string Text => Encoding.UTF8.GetString(Data);
}

/// <summary>A transmission reply: simple, or all chunks of a structured reply up to DONE.</summary>
public sealed record NbdReply(ulong Cookie, uint Error, byte[]? Data, string? Message = null, ushort ErrorChunkType = 0, ulong? ErrorOffset = null);

/// <summary>
/// A deliberately low-level NBD client for protocol tests: it encodes the wire format itself (only the constants are shared with
/// the server) and can send anything, well-formed or not.
/// </summary>
public sealed class NbdTestClient : IAsyncDisposable
{
    private static readonly TimeSpan IoTimeout = TimeSpan.FromSeconds(10);
    private readonly Socket _socket;
    private readonly Dictionary<ulong, (ushort Type, ulong Offset, uint Length)> _pending = [];
    private readonly Dictionary<ulong, byte[]> _partialReads = [];
    private ulong _nextCookie = 0x1000;

    private NbdTestClient(Socket socket) => _socket = socket;

    public ushort HandshakeFlags { get; private set; }
    public bool Structured { get; private set; }
    public long ExportSize { get; private set; }
    public ushort TransmissionFlags { get; private set; }

    public static async Task<NbdTestClient> ConnectAsync(EndPoint endPoint)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, endPoint is UnixDomainSocketEndPoint ? ProtocolType.Unspecified : ProtocolType.Tcp);
        await socket.ConnectAsync(endPoint);
        var client = new NbdTestClient(socket);
        var greeting = await client.ReceiveExactAsync(NbdProtocol.GreetingLength);
        Assert.Equal(NbdProtocol.InitMagic, BinaryPrimitives.ReadUInt64BigEndian(greeting));
        Assert.Equal(NbdProtocol.OptionMagic, BinaryPrimitives.ReadUInt64BigEndian(greeting.AsSpan(8)));
        client.HandshakeFlags = BinaryPrimitives.ReadUInt16BigEndian(greeting.AsSpan(16));
        return client;
    }

    public async Task SendAsync(ReadOnlyMemory<byte> data)
    {
        while (!data.IsEmpty)
            data = data[await _socket.SendAsync(data, SocketFlags.None)..];
    }

    /// <summary>Half-closes the connection: the server sees end of stream.</summary>
    public void ShutdownSend() => _socket.Shutdown(SocketShutdown.Send);

    /// <exception cref="EndOfStreamException">The server closed the connection first.</exception>
    public async Task<byte[]> ReceiveExactAsync(int count)
    {
        var buffer = new byte[count];
        var done = 0;
        using var timeout = new CancellationTokenSource(IoTimeout);
        while (done < count)
        {
            var received = await _socket.ReceiveAsync(buffer.AsMemory(done), SocketFlags.None, timeout.Token);
            if (received == 0)
                throw new EndOfStreamException($"the server closed the connection after {done} of {count} bytes");
            done += received;
        }
        return buffer;
    }

    /// <summary>Reads until the server closes the connection; returns what arrived before. Fails if it stays open.</summary>
    public async Task<byte[]> ReadUntilClosedAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? IoTimeout);
        var received = new MemoryStream();
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var n = await _socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                if (n == 0)
                    return received.ToArray();
                received.Write(buffer, 0, n);
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"Expected the server to close the connection within {(timeout ?? IoTimeout).TotalSeconds} s; it sent {received.Length} bytes and stayed open.");
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            return received.ToArray();
        }
    }

    // Handshake.

    public Task SendClientFlagsAsync(uint flags = NbdProtocol.ClientFlagFixedNewstyle | NbdProtocol.ClientFlagNoZeroes)
    {
        var data = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(data, flags);
        return SendAsync(data);
    }

    public static byte[] Option(uint option, ReadOnlySpan<byte> data, ulong magic = NbdProtocol.OptionMagic, uint? claimedLength = null)
    {
        var frame = new byte[16 + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(frame, magic);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(12), claimedLength ?? (uint)data.Length);
        data.CopyTo(frame.AsSpan(16));
        return frame;
    }

    public Task SendOptionAsync(uint option, byte[]? data = null) => SendAsync(Option(option, data ?? []));

    public async Task<OptionReply> ReadOptionReplyAsync()
    {
        var header = await ReceiveExactAsync(NbdProtocol.OptionReplyHeaderLength);
        Assert.Equal(NbdProtocol.OptionReplyMagic, BinaryPrimitives.ReadUInt64BigEndian(header));
        var length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
        Assert.True(length <= 1 << 20, $"option reply claims {length} bytes");
        var data = length == 0 ? [] : await ReceiveExactAsync((int)length);
        return new OptionReply(BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8)), BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12)), data);
    }

    /// <summary>Sends an option and reads its replies up to the final one (ACK or an error); INFO and SERVER replies come first.</summary>
    public async Task<List<OptionReply>> OptionAsync(uint option, byte[]? data = null)
    {
        await SendOptionAsync(option, data);
        var replies = new List<OptionReply>();
        while (true)
        {
            var reply = await ReadOptionReplyAsync();
            Assert.Equal(option, reply.Option);
            replies.Add(reply);
            if (reply.Type is not (NbdProtocol.RepInfo or NbdProtocol.RepServer))
                return replies;
        }
    }

    public static byte[] GoData(string name, params ushort[] infos)
    {
        var nameBytes = Encoding.UTF8.GetBytes(name);
        var data = new byte[4 + nameBytes.Length + 2 + 2 * infos.Length];
        BinaryPrimitives.WriteUInt32BigEndian(data, (uint)nameBytes.Length);
        nameBytes.CopyTo(data, 4);
        BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(4 + nameBytes.Length), (ushort)infos.Length);
        for (var i = 0; i < infos.Length; i++)
            BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(6 + nameBytes.Length + 2 * i), infos[i]);
        return data;
    }

    /// <summary>Client flags, optionally structured replies, then NBD_OPT_GO; asserts success and records the export's size and flags.</summary>
    public async Task GoAsync(string export, bool structured = true)
    {
        await SendClientFlagsAsync();
        if (structured)
        {
            var ack = Assert.Single(await OptionAsync(NbdProtocol.OptStructuredReply));
            Assert.Equal(NbdProtocol.RepAck, ack.Type);
            Structured = true;
        }
        var replies = await OptionAsync(NbdProtocol.OptGo, GoData(export, NbdProtocol.InfoBlockSize));
        Assert.Equal(NbdProtocol.RepAck, replies[^1].Type);
        var info = replies.Single(r => r.Type == NbdProtocol.RepInfo && BinaryPrimitives.ReadUInt16BigEndian(r.Data) == NbdProtocol.InfoExport);
        ExportSize = (long)BinaryPrimitives.ReadUInt64BigEndian(info.Data.AsSpan(2));
        TransmissionFlags = BinaryPrimitives.ReadUInt16BigEndian(info.Data.AsSpan(10));
    }

    // Transmission.

    public static byte[] Request(ushort type, ulong cookie, ulong offset, uint length, ushort flags = 0, uint magic = NbdProtocol.RequestMagic)
    {
        var frame = new byte[NbdProtocol.RequestLength];
        BinaryPrimitives.WriteUInt32BigEndian(frame, magic);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(6), type);
        BinaryPrimitives.WriteUInt64BigEndian(frame.AsSpan(8), cookie);
        BinaryPrimitives.WriteUInt64BigEndian(frame.AsSpan(16), offset);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(24), length);
        return frame;
    }

    /// <summary>Sends a request (and its payload, if any) and remembers it so its reply can be decoded; returns its cookie.</summary>
    public async Task<ulong> SendRequestAsync(ushort type, ulong offset, uint length, ushort flags = 0, byte[]? payload = null)
    {
        var cookie = _nextCookie++;
        _pending[cookie] = (type, offset, length);
        var header = Request(type, cookie, offset, length, flags);
        await SendAsync(payload is null ? header : [.. header, .. payload]);
        return cookie;
    }

    public async Task<NbdReply> ReadReplyAsync()
    {
        while (true)
        {
            var magic = BinaryPrimitives.ReadUInt32BigEndian(await ReceiveExactAsync(4));
            if (magic == NbdProtocol.SimpleReplyMagic)
            {
                var rest = await ReceiveExactAsync(12);
                var error = BinaryPrimitives.ReadUInt32BigEndian(rest);
                var cookie = BinaryPrimitives.ReadUInt64BigEndian(rest.AsSpan(4));
                Assert.True(_pending.Remove(cookie, out var request), $"simple reply for unknown cookie {cookie:x}");
                byte[]? data = null;
                if (request.Type == NbdProtocol.CmdRead && error == 0)
                {
                    Assert.False(Structured, "a simple reply to a read after structured replies were negotiated");
                    data = await ReceiveExactAsync((int)request.Length);
                }
                return new NbdReply(cookie, error, data);
            }
            Assert.Equal(NbdProtocol.StructuredReplyMagic, magic);
            var chunk = await ReceiveExactAsync(16);
            var flags = BinaryPrimitives.ReadUInt16BigEndian(chunk);
            var type = BinaryPrimitives.ReadUInt16BigEndian(chunk.AsSpan(2));
            var chunkCookie = BinaryPrimitives.ReadUInt64BigEndian(chunk.AsSpan(4));
            var length = BinaryPrimitives.ReadUInt32BigEndian(chunk.AsSpan(12));
            Assert.True(_pending.TryGetValue(chunkCookie, out var pending), $"structured chunk for unknown cookie {chunkCookie:x}");
            var payload = length == 0 ? [] : await ReceiveExactAsync((int)length);
            var done = (flags & NbdProtocol.ReplyFlagDone) != 0;
            switch (type)
            {
                case NbdProtocol.ReplyTypeOffsetData:
                    {
                        var offset = BinaryPrimitives.ReadUInt64BigEndian(payload);
                        Assert.InRange(offset, pending.Offset, pending.Offset + pending.Length - 1);
                        var buffer = _partialReads.TryGetValue(chunkCookie, out var b) ? b : _partialReads[chunkCookie] = new byte[pending.Length];
                        payload.AsSpan(8).CopyTo(buffer.AsSpan((int)(offset - pending.Offset)));
                        break;
                    }
                case NbdProtocol.ReplyTypeNone:
                    Assert.True(done);
                    break;
                case NbdProtocol.ReplyTypeError:
                case NbdProtocol.ReplyTypeErrorOffset:
                    {
                        var error = BinaryPrimitives.ReadUInt32BigEndian(payload);
                        var messageLength = BinaryPrimitives.ReadUInt16BigEndian(payload.AsSpan(4));
                        var message = Encoding.UTF8.GetString(payload, 6, messageLength);
                        ulong? errorOffset = type == NbdProtocol.ReplyTypeErrorOffset ? BinaryPrimitives.ReadUInt64BigEndian(payload.AsSpan(6 + messageLength)) : null;
                        Assert.True(done, "this client expects error chunks to be final");
                        _pending.Remove(chunkCookie);
                        _partialReads.Remove(chunkCookie);
                        return new NbdReply(chunkCookie, error, null, message, type, errorOffset);
                    }
                default:
                    Assert.Fail($"unexpected structured reply type {type}");
                    break;
            }
            if (done)
            {
                _pending.Remove(chunkCookie);
                _partialReads.Remove(chunkCookie, out var data);
                return new NbdReply(chunkCookie, 0, data ?? (pending.Type == NbdProtocol.CmdRead ? [] : null));
            }
        }
    }

    public async Task<NbdReply> ReadAsync(long offset, int length, ushort flags = 0)
    {
        var cookie = await SendRequestAsync(NbdProtocol.CmdRead, (ulong)offset, (uint)length, flags);
        var reply = await ReadReplyAsync();
        Assert.Equal(cookie, reply.Cookie);
        return reply;
    }

    public async Task<NbdReply> WriteAsync(long offset, byte[] data, ushort flags = 0)
    {
        var cookie = await SendRequestAsync(NbdProtocol.CmdWrite, (ulong)offset, (uint)data.Length, flags, data);
        var reply = await ReadReplyAsync();
        Assert.Equal(cookie, reply.Cookie);
        return reply;
    }

    public async Task<NbdReply> CommandAsync(ushort type, long offset = 0, uint length = 0, ushort flags = 0)
    {
        var cookie = await SendRequestAsync(type, (ulong)offset, length, flags);
        var reply = await ReadReplyAsync();
        Assert.Equal(cookie, reply.Cookie);
        return reply;
    }

    /// <summary>Sends NBD_CMD_DISC; the server closes once its replies are out.</summary>
    public Task DisconnectAsync() => SendAsync(Request(NbdProtocol.CmdDisconnect, _nextCookie++, 0, 0));

    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
