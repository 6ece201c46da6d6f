using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace XenAoe.Nbd;

internal sealed partial class NbdConnection
{
    /// <summary>Options one client may send before choosing an export; more is treated as a denial-of-service attempt.</summary>
    private const int MaxOptions = 1024;

    /// <summary>Room kept free in the send buffer for one NBD_REP_SERVER: a name and a description of up to 4096 bytes each, plus headers.</summary>
    private const int MaxOptionReplyLength = 2 * NbdProtocol.MaxStringLength + 64;

    private bool _structured;
    private bool _noZeroes;

    /// <summary>
    /// Runs the fixed newstyle handshake; returns the export the client chose, or null when the connection ends here (abort,
    /// unknown export with NBD_OPT_EXPORT_NAME, protocol error, peer gone). The reason is recorded for the close log.
    /// </summary>
    private async Task<NbdExport?> HandshakeAsync()
    {
        NbdWriter.WriteGreeting(_sendBuffer);
        await SendDirectAsync(_sendBuffer.AsMemory(0, NbdProtocol.GreetingLength)).ConfigureAwait(false);
        if (!await FillAsync(sizeof(uint)).ConfigureAwait(false))
            return EndedInHandshake("client flags");
        var clientFlags = BinaryPrimitives.ReadUInt32BigEndian(_receiveBuffer.AsSpan(_head));
        _head += sizeof(uint);
        if ((clientFlags & ~(NbdProtocol.ClientFlagFixedNewstyle | NbdProtocol.ClientFlagNoZeroes)) != 0)
        {
            // The protocol requires the server to close when it sees client flags it does not know.
            ProtocolError($"unknown client flags 0x{clientFlags:x8}");
            return null;
        }
        _noZeroes = (clientFlags & NbdProtocol.ClientFlagNoZeroes) != 0;

        for (var count = 0; ; count++)
        {
            if (!await FillAsync(NbdProtocol.OptionHeaderLength).ConfigureAwait(false))
                return EndedInHandshake("an option header");
            NbdOptionHeader.TryRead(_receiveBuffer.AsSpan(_head, _tail - _head), out var option);
            if (option.Magic != NbdProtocol.OptionMagic)
            {
                ProtocolError($"bad option magic 0x{option.Magic:x16}");
                return null;
            }
            _head += NbdProtocol.OptionHeaderLength;
            if (count == MaxOptions)
            {
                ProtocolError($"more than {MaxOptions} options without choosing an export");
                return null;
            }
            if (option.Length > NbdServer.MaxOptionLength)
            {
                // Skipping up to 4 GiB of data is pointless: answer, then close.
                var used = PutOptionReply(0, option.Option, NbdProtocol.RepErrTooBig, "option data longer than 64 KiB");
                await SendDirectAsync(_sendBuffer.AsMemory(0, used)).ConfigureAwait(false);
                ProtocolError($"option {option.Option} claims {option.Length} bytes of data (limit {NbdServer.MaxOptionLength})");
                return null;
            }
            var length = (int)option.Length;
            if (!await FillAsync(length).ConfigureAwait(false))
            {
                ProtocolError($"connection closed inside the data of option {option.Option} ({Unparsed} of {length} bytes)");
                return null;
            }
            // The data stays valid until the next FillAsync: handling an option only sends.
            var data = new ReadOnlyMemory<byte>(_receiveBuffer, _head, length);
            _head += length;

            switch (option.Option)
            {
                case NbdProtocol.OptExportName:
                    {
                        var export = _server.FindExport(DecodeName(data.Span));
                        if (export is null)
                        {
                            // NBD_OPT_EXPORT_NAME cannot carry an error: the protocol says to end the session.
                            ProtocolError($"NBD_OPT_EXPORT_NAME asked for unknown export '{Printable(DecodeName(data.Span))}'");
                            return null;
                        }
                        var used = PutExportNameReply(export);
                        await SendDirectAsync(_sendBuffer.AsMemory(0, used)).ConfigureAwait(false);
                        return export;
                    }
                case NbdProtocol.OptAbort:
                    SetCloseReason("client aborted the handshake", protocolError: false);
                    try
                    {
                        var used = PutOptionReply(0, option.Option, NbdProtocol.RepAck, "");
                        await SendDirectAsync(_sendBuffer.AsMemory(0, used)).ConfigureAwait(false);
                    }
                    catch (SocketException)
                    {
                        // Clients may close without waiting for the acknowledgement; the protocol allows it.
                    }
                    return null;
                case NbdProtocol.OptList:
                    await ListAsync(option.Option, length).ConfigureAwait(false);
                    break;
                case NbdProtocol.OptInfo:
                case NbdProtocol.OptGo:
                    {
                        var used = PutInfoReplies(option.Option, data.Span, out var export);
                        await SendDirectAsync(_sendBuffer.AsMemory(0, used)).ConfigureAwait(false);
                        if (export is not null && option.Option == NbdProtocol.OptGo)
                            return export;
                        break;
                    }
                case NbdProtocol.OptStructuredReply:
                    {
                        uint reply;
                        if (length != 0)
                            reply = NbdProtocol.RepErrInvalid;
                        else
                        {
                            _structured = true;
                            reply = NbdProtocol.RepAck;
                        }
                        var used = PutOptionReply(0, option.Option, reply, reply == NbdProtocol.RepAck ? "" : "NBD_OPT_STRUCTURED_REPLY takes no data");
                        await SendDirectAsync(_sendBuffer.AsMemory(0, used)).ConfigureAwait(false);
                        break;
                    }
                default:
                    {
                        // STARTTLS, meta contexts (block status), extended headers and anything newer.
                        var used = PutOptionReply(0, option.Option, NbdProtocol.RepErrUnsup, "");
                        await SendDirectAsync(_sendBuffer.AsMemory(0, used)).ConfigureAwait(false);
                        break;
                    }
            }
        }
    }

    private NbdExport? EndedInHandshake(string what)
    {
        if (Unparsed == 0)
            SetCloseReason($"client went away before {what}", protocolError: false);
        else
            ProtocolError($"connection closed inside {what} ({Unparsed} bytes)");
        return null;
    }

    private async ValueTask ListAsync(uint option, int length)
    {
        if (length != 0)
        {
            var error = PutOptionReply(0, option, NbdProtocol.RepErrInvalid, "NBD_OPT_LIST takes no data");
            await SendDirectAsync(_sendBuffer.AsMemory(0, error)).ConfigureAwait(false);
            return;
        }
        var used = 0;
        foreach (var export in _server.ExportSnapshot())
        {
            if (_sendBuffer.Length - used < MaxOptionReplyLength)
            {
                await SendDirectAsync(_sendBuffer.AsMemory(0, used)).ConfigureAwait(false);
                used = 0;
            }
            used = PutServerReply(used, option, export);
        }
        used = PutOptionReply(used, option, NbdProtocol.RepAck, "");
        await SendDirectAsync(_sendBuffer.AsMemory(0, used)).ConfigureAwait(false);
    }

    private static string DecodeName(ReadOnlySpan<byte> name) => Encoding.UTF8.GetString(name);

    /// <summary>A client-chosen name cut to a length fit for a log line or an error message.</summary>
    private static string Printable(string name) => name.Length <= 100 ? name : string.Concat(name.AsSpan(0, 100), "...");

    private int PutExportNameReply(NbdExport export)
    {
        var span = _sendBuffer.AsSpan();
        BinaryPrimitives.WriteUInt64BigEndian(span, (ulong)export.Device.Size);
        BinaryPrimitives.WriteUInt16BigEndian(span[8..], export.TransmissionFlags);
        if (_noZeroes)
            return 10;
        span.Slice(10, 124).Clear();
        return 134;
    }

    /// <summary>Writes an option reply whose data is a UTF-8 string (an error message, or empty) at <paramref name="at"/>.</summary>
    private int PutOptionReply(int at, uint option, uint type, string message)
    {
        var span = _sendBuffer.AsSpan(at);
        var length = Encoding.UTF8.GetBytes(message, span[NbdProtocol.OptionReplyHeaderLength..]);
        NbdWriter.WriteOptionReplyHeader(span, option, type, length);
        return at + NbdProtocol.OptionReplyHeaderLength + length;
    }

    private int PutServerReply(int at, uint option, NbdExport export)
    {
        var span = _sendBuffer.AsSpan(at);
        var data = span[NbdProtocol.OptionReplyHeaderLength..];
        var nameLength = Encoding.UTF8.GetBytes(export.Name, data[4..]);
        BinaryPrimitives.WriteUInt32BigEndian(data, (uint)nameLength);
        var descriptionLength = export.Description is null ? 0 : Encoding.UTF8.GetBytes(export.Description, data[(4 + nameLength)..]);
        var length = 4 + nameLength + descriptionLength;
        NbdWriter.WriteOptionReplyHeader(span, option, NbdProtocol.RepServer, length);
        return at + NbdProtocol.OptionReplyHeaderLength + length;
    }

    /// <summary>
    /// Writes the whole answer to NBD_OPT_INFO or NBD_OPT_GO: NBD_REP_INFO items then NBD_REP_ACK, or one error reply.
    /// Block sizes are always sent: the server refuses requests not aligned to 512 bytes, and QEMU, nbdinfo and libnbd ask for them.
    /// </summary>
    private int PutInfoReplies(uint option, ReadOnlySpan<byte> data, out NbdExport? export)
    {
        export = null;
        if (!NbdGoRequest.TryParse(data, out var request))
            return PutOptionReply(0, option, NbdProtocol.RepErrInvalid, "malformed NBD_OPT_INFO/NBD_OPT_GO data");
        var name = DecodeName(request.Name);
        var found = _server.FindExport(name);
        if (found is null)
            return PutOptionReply(0, option, NbdProtocol.RepErrUnknown, $"no export named '{Printable(name)}'");

        var used = 0;
        var span = _sendBuffer.AsSpan();

        // NBD_INFO_EXPORT: type, size, transmission flags.
        NbdWriter.WriteOptionReplyHeader(span[used..], option, NbdProtocol.RepInfo, 12);
        var item = span[(used + NbdProtocol.OptionReplyHeaderLength)..];
        BinaryPrimitives.WriteUInt16BigEndian(item, NbdProtocol.InfoExport);
        BinaryPrimitives.WriteUInt64BigEndian(item[2..], (ulong)found.Device.Size);
        BinaryPrimitives.WriteUInt16BigEndian(item[10..], found.TransmissionFlags);
        used += NbdProtocol.OptionReplyHeaderLength + 12;

        // NBD_INFO_BLOCK_SIZE: type, minimum, preferred, maximum payload.
        NbdWriter.WriteOptionReplyHeader(span[used..], option, NbdProtocol.RepInfo, 14);
        item = span[(used + NbdProtocol.OptionReplyHeaderLength)..];
        BinaryPrimitives.WriteUInt16BigEndian(item, NbdProtocol.InfoBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(item[2..], NbdServer.MinimumBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(item[6..], NbdServer.PreferredBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(item[10..], NbdServer.MaxPayloadLength);
        used += NbdProtocol.OptionReplyHeaderLength + 14;

        // Each string item is sent at most once, however often a client repeats the request, so the answer stays within
        // MaxOptionReplyLength (names and descriptions are at most 4096 bytes).
        bool nameSent = false, descriptionSent = false;
        for (var i = 0; i < request.InfoRequestCount; i++)
        {
            string? text = null;
            switch (request.InfoRequest(i))
            {
                case NbdProtocol.InfoName when !nameSent:
                    text = found.Name;
                    nameSent = true;
                    break;
                case NbdProtocol.InfoDescription when !descriptionSent:
                    text = found.Description;
                    descriptionSent = true;
                    break;
                default:
                    // Unknown requests are ignored, as the protocol requires; export and block size are already sent.
                    break;
            }
            if (text is null)
                continue;
            item = span[(used + NbdProtocol.OptionReplyHeaderLength)..];
            BinaryPrimitives.WriteUInt16BigEndian(item, request.InfoRequest(i));
            var length = 2 + Encoding.UTF8.GetBytes(text, item[2..]);
            NbdWriter.WriteOptionReplyHeader(span[used..], option, NbdProtocol.RepInfo, length);
            used += NbdProtocol.OptionReplyHeaderLength + length;
        }
        export = found;
        return PutOptionReply(used, option, NbdProtocol.RepAck, "");
    }
}
