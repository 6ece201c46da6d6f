using Microsoft.Extensions.Logging;

namespace XenAoe.Hypervisors;

/// <summary>Source-generated log methods: one line per VM lifecycle step, nothing per QMP message but skipped lines at debug.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Debug, Message = "QMP {Socket}: skipped a {Length}-byte line ({Why})")]
    public static partial void QmpLineIgnored(ILogger logger, string socket, string why, int length);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "QMP {Socket}: a handler for event {Event} threw")]
    public static partial void EventHandlerFailed(ILogger logger, string @event, string socket, Exception exception);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "VM {Name} started: pid {Pid}, accelerator {Accelerator}")]
    public static partial void Started(ILogger logger, string name, int pid, Accelerator accelerator);

    [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "VM {Name} stopped: {How}")]
    public static partial void Stopped(ILogger logger, string name, string how);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "VM {Name} re-adopted: pid {Pid}")]
    public static partial void Adopted(ILogger logger, string name, int pid);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "VM {Name} migrating to {Uri}")]
    public static partial void Migrating(ILogger logger, string name, string uri);

    [LoggerMessage(EventId = 7, Level = LogLevel.Information, Message = "VM {Name} event {Event} {Data}")]
    public static partial void VmEvent(ILogger logger, string name, string @event, string data);

    [LoggerMessage(EventId = 8, Level = LogLevel.Warning, Message = "VM {Name}: run directory entry ignored: {Reason}")]
    public static partial void RunDirectoryEntryIgnored(ILogger logger, string name, string reason);
}
