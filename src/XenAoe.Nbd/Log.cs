using Microsoft.Extensions.Logging;

namespace XenAoe.Nbd;

/// <summary>Source-generated log methods. Per connection at most one warning is written: the reason it was dropped.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "NBD server listening on {EndPoint}")]
    public static partial void Listening(ILogger logger, string endPoint);

    [LoggerMessage(EventId = 2, Level = LogLevel.Debug, Message = "NBD connection {Id} from {Remote} opened export '{Export}' (structured replies: {Structured})")]
    public static partial void Opened(ILogger logger, long id, string remote, string export, bool structured);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "NBD connection {Id} from {Remote} dropped: {Reason}")]
    public static partial void ProtocolError(ILogger logger, long id, string remote, string reason);

    [LoggerMessage(EventId = 4, Level = LogLevel.Debug, Message = "NBD connection {Id} from {Remote} closed: {Reason}")]
    public static partial void Closed(ILogger logger, long id, string remote, string reason);

    [LoggerMessage(EventId = 5, Level = LogLevel.Error, Message = "NBD accept on {EndPoint} failed; no longer listening there")]
    public static partial void AcceptFailed(ILogger logger, string endPoint, Exception exception);

    [LoggerMessage(EventId = 6, Level = LogLevel.Warning, Message = "NBD connection {Id} to export '{Export}': the device failed a request (further failures are counted, not logged)")]
    public static partial void DeviceError(ILogger logger, long id, string export, Exception exception);

    [LoggerMessage(EventId = 7, Level = LogLevel.Information, Message = "NBD export '{Export}' removed; disconnecting {Connections} clients")]
    public static partial void ExportRemoved(ILogger logger, string export, int connections);
}
