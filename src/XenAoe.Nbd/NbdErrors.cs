using XenAoe.Block;

namespace XenAoe.Nbd;

/// <summary>Maps device failures and request checks to NBD error values.</summary>
internal static class NbdErrors
{
    public static uint FromException(Exception e) => e switch
    {
        BlockDeviceException b => b.Error switch
        {
            BlockError.NoSpace => NbdProtocol.ENoSpc,
            BlockError.Invalid => NbdProtocol.EInval,
            BlockError.NotPermitted => NbdProtocol.EPerm,
            _ => NbdProtocol.EIo,
        },
        // The connection or the server is going away; the client most likely never sees this reply.
        OperationCanceledException or ObjectDisposedException => NbdProtocol.EShutdown,
        _ => NbdProtocol.EIo,
    };

    /// <summary>
    /// Checks a request against the export before it reaches the device; returns 0 or the NBD error, with a message for the
    /// structured error chunk. Messages are constants so a refused request allocates nothing.
    /// </summary>
    public static uint Check(in NbdRequestHeader request, long size, bool readOnly, out string? message)
    {
        message = null;
        ushort allowedFlags;
        bool writes;
        switch (request.Type)
        {
            case NbdProtocol.CmdRead:
                // FUA is valid on every command once advertised ("existing clients are known to set this bit on other commands").
                allowedFlags = NbdProtocol.CmdFlagFua;
                writes = false;
                break;
            case NbdProtocol.CmdWrite:
            case NbdProtocol.CmdTrim:
                allowedFlags = NbdProtocol.CmdFlagFua;
                writes = true;
                break;
            case NbdProtocol.CmdWriteZeroes:
                allowedFlags = NbdProtocol.CmdFlagFua | NbdProtocol.CmdFlagNoHole;
                writes = true;
                break;
            case NbdProtocol.CmdFlush:
                if ((request.Flags & ~NbdProtocol.CmdFlagFua) != 0)
                {
                    message = "unsupported command flags";
                    return NbdProtocol.EInval;
                }
                return 0;
            default:
                message = "unknown command";
                return NbdProtocol.EInval;
        }
        if ((request.Flags & ~allowedFlags) != 0)
        {
            message = "unsupported command flags";
            return NbdProtocol.EInval;
        }
        if (writes && readOnly)
        {
            message = "the export is read-only";
            return NbdProtocol.EPerm;
        }
        if (request.Length == 0 || ((request.Offset | request.Length) & (NbdServer.MinimumBlockSize - 1)) != 0)
        {
            message = "offset and length must be non-zero multiples of 512";
            return NbdProtocol.EInval;
        }
        if (request.Type is NbdProtocol.CmdRead or NbdProtocol.CmdWrite && request.Length > NbdServer.MaxPayloadLength)
        {
            message = "length exceeds the 32 MiB maximum payload";
            return NbdProtocol.EInval;
        }
        if (request.Offset > (ulong)size || request.Length > (ulong)size - request.Offset)
        {
            message = "request past the end of the export";
            // The protocol asks for ENOSPC on writes past the end and EINVAL on reads and trims.
            return request.Type is NbdProtocol.CmdWrite or NbdProtocol.CmdWriteZeroes ? NbdProtocol.ENoSpc : NbdProtocol.EInval;
        }
        return 0;
    }
}
