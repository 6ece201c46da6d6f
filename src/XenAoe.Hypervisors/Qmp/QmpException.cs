namespace XenAoe.Hypervisors.Qmp;

/// <summary>QEMU answered a command with an error reply.</summary>
/// <param name="errorClass">QMP's error class, e.g. <c>GenericError</c>, <c>CommandNotFound</c>, <c>DeviceNotActive</c>.</param>
/// <param name="description">QEMU's human-readable <c>desc</c>.</param>
public sealed class QmpException(string command, string errorClass, string description)
    : Exception($"QMP command '{command}' failed: {errorClass}: {description}")
{
    public string Command { get; } = command;

    public string ErrorClass { get; } = errorClass;

    public string Description { get; } = description;
}

/// <summary>The QMP connection is closed or broke; commands waiting on it fail with this.</summary>
public sealed class QmpConnectionException : IOException
{
    public QmpConnectionException(string message)
        : base(message)
    {
    }

    public QmpConnectionException(string message, Exception? inner)
        : base(message, inner)
    {
    }
}

/// <summary>An asynchronous QMP event, e.g. <c>SHUTDOWN</c>, <c>RESET</c>, <c>STOP</c>, <c>RESUME</c>, <c>MIGRATION</c>.</summary>
/// <param name="Data">The event's <c>data</c> object (a detached copy); <see cref="System.Text.Json.JsonValueKind.Undefined"/> when absent.</param>
/// <param name="Timestamp">When QEMU emitted it.</param>
public sealed record QmpEvent(string Name, System.Text.Json.JsonElement Data, DateTimeOffset Timestamp);
