using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace XenAoe.Hypervisors.Qmp;

/// <summary>
/// A QEMU Machine Protocol client: JSON objects, one per line, over a unix socket. Reads the greeting, negotiates
/// capabilities, then matches replies to commands by <c>id</c> while delivering the asynchronous events interleaved
/// with them to <see cref="EventReceived"/>.
/// </summary>
/// <remarks>
/// Thread-safe: commands may be issued concurrently (writes are serialized, replies matched by id). Event handlers run
/// on the reader loop and must not block. Lines that are not JSON objects are counted in <see cref="IgnoredLines"/>
/// and skipped. When the connection ends, every pending and later command fails with <see cref="QmpConnectionException"/>.
/// </remarks>
public sealed class QmpClient : IAsyncDisposable
{
    /// <summary>Longest line accepted; QEMU's largest replies (query-qmp-schema) are a few hundred KiB.</summary>
    private const int MaxLineBytes = 16 * 1024 * 1024;

    private static readonly TimeSpan s_defaultTimeout = TimeSpan.FromSeconds(30);

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _reader;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ConcurrentDictionary<long, Pending> _pending = new();
    private readonly TaskCompletionSource<JsonElement> _greeting = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _shutdown = new();
    private readonly ILogger _logger;
    private readonly Task _readLoop;
    private long _nextId;
    private long _ignoredLines;
    private volatile string? _closedReason;
    private int _disposed;

    private QmpClient(Socket socket, string socketPath, ILogger logger)
    {
        _socket = socket;
        SocketPath = socketPath;
        _logger = logger;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(leaveOpen: true));
        _readLoop = Task.Run(ReadLoopAsync);
    }

    public string SocketPath { get; }

    /// <summary>The greeting's <c>QMP</c> object (version, capabilities).</summary>
    public JsonElement Greeting { get; private set; }

    /// <summary>Used by <see cref="ExecuteAsync"/> when no timeout is given. Default 30 s.</summary>
    public TimeSpan CommandTimeout { get; set; } = s_defaultTimeout;

    /// <summary>Raised on the reader loop for every event, in arrival order.</summary>
    public event Action<QmpEvent>? EventReceived;

    /// <summary>Completes when the connection has ended, for whatever reason.</summary>
    public Task Completion => _completion.Task;

    public bool IsConnected => _closedReason is null;

    /// <summary>Lines skipped because they were not JSON objects QMP defines.</summary>
    public long IgnoredLines => Interlocked.Read(ref _ignoredLines);

    /// <summary>Connects, waits for the greeting and leaves capabilities negotiation mode.</summary>
    /// <exception cref="QmpConnectionException">The socket refused, or closed before negotiation finished.</exception>
    /// <exception cref="TimeoutException">No greeting or no reply to <c>qmp_capabilities</c> within <paramref name="timeout"/>.</exception>
    public static async Task<QmpClient> ConnectAsync(string socketPath, TimeSpan? timeout = null, ILogger? logger = null, CancellationToken ct = default)
    {
        var limit = timeout ?? s_defaultTimeout;
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            using var connectDeadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
            connectDeadline.CancelAfter(limit);
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), connectDeadline.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            socket.Dispose();
            throw new QmpConnectionException($"Cannot connect to QMP socket {socketPath}: {e.Message}", e);
        }

        var client = new QmpClient(socket, socketPath, logger ?? NullLogger.Instance);
        try
        {
            try
            {
                client.Greeting = await client._greeting.Task.WaitAsync(limit, ct).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                throw new TimeoutException($"QMP socket {socketPath} sent no greeting within {limit.TotalSeconds:0.###} s (is another client connected?).");
            }
            await client.ExecuteAsync("qmp_capabilities", null, limit, ct).ConfigureAwait(false);
            return client;
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Runs <paramref name="command"/> and returns its <c>return</c> value (a detached copy).</summary>
    /// <exception cref="QmpException">QEMU replied with an error.</exception>
    /// <exception cref="QmpConnectionException">The connection is closed or closed before the reply.</exception>
    /// <exception cref="TimeoutException">No reply within <paramref name="timeout"/> (default <see cref="CommandTimeout"/>).</exception>
    public async Task<JsonElement> ExecuteAsync(string command, JsonObject? arguments = null, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(command);
        var id = Interlocked.Increment(ref _nextId);
        var pending = new Pending(command);
        _pending[id] = pending;
        try
        {
            // Registered before the check so that a close racing with this call fails the command rather than losing it.
            if (_closedReason is { } reason)
                throw Closed(command, reason);
            await WriteCommandAsync(id, command, arguments, ct).ConfigureAwait(false);
            var limit = timeout ?? CommandTimeout;
            try
            {
                return await pending.Reply.Task.WaitAsync(limit, ct).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                throw new TimeoutException($"QMP command '{command}' on {SocketPath} got no reply within {limit.TotalSeconds:0.###} s.");
            }
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    /// <summary>
    /// Waits for the next event named <paramref name="name"/> that <paramref name="match"/> accepts. Subscribe before
    /// causing the event: call this first, run the command, then await the returned task.
    /// </summary>
    public Task<QmpEvent> WaitForEventAsync(string name, TimeSpan timeout, Func<QmpEvent, bool>? match = null, CancellationToken ct = default)
    {
        var seen = new TaskCompletionSource<QmpEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        void Handler(QmpEvent e)
        {
            if (e.Name == name && (match is null || match(e)))
                seen.TrySetResult(e);
        }
        EventReceived += Handler;
        _ = Completion.ContinueWith(_ => seen.TrySetException(Closed($"waiting for event {name}", _closedReason ?? "closed")), TaskScheduler.Default);
        return WaitAsync();

        async Task<QmpEvent> WaitAsync()
        {
            try
            {
                return await seen.Task.WaitAsync(timeout, ct).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                throw new TimeoutException($"QMP event {name} did not arrive on {SocketPath} within {timeout.TotalSeconds:0.###} s.");
            }
            finally
            {
                EventReceived -= Handler;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        Close("the client was disposed");
        await _shutdown.CancelAsync().ConfigureAwait(false);
        _socket.Dispose();
        try
        {
            await _readLoop.ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
        {
            // The loop ends by cancellation or by the socket it reads being closed: both are the shutdown asked for.
        }
        _shutdown.Dispose();
        _writeLock.Dispose();
    }

    private async Task WriteCommandAsync(long id, string command, JsonObject? arguments, CancellationToken ct)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("execute"u8, command);
            if (arguments is not null)
            {
                writer.WritePropertyName("arguments"u8);
                arguments.WriteTo(writer);
            }
            writer.WriteNumber("id"u8, id);
            writer.WriteEndObject();
        }
        buffer.Write("\n"u8);
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await _stream.WriteAsync(buffer.WrittenMemory, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException)
        {
            Close($"writing '{command}' failed: {e.Message}");
            throw Closed(command, _closedReason ?? e.Message);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private async Task ReadLoopAsync()
    {
        var reason = "QEMU closed the connection";
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync(_shutdown.Token).ConfigureAwait(false);
                var buffer = result.Buffer;
                while (TryReadLine(ref buffer, out var line))
                    HandleLine(line);
                if (buffer.Length > MaxLineBytes)
                {
                    reason = $"a line exceeded {MaxLineBytes} bytes";
                    break;
                }
                _reader.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted)
                    break;
            }
        }
        catch (OperationCanceledException) when (_shutdown.IsCancellationRequested)
        {
            reason = "the client was disposed";
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            reason = $"the connection broke: {e.Message}";
        }
        finally
        {
            Close(reason);
            await _reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    private static bool TryReadLine(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> line)
    {
        var reader = new SequenceReader<byte>(buffer);
        if (reader.TryReadTo(out line, (byte)'\n'))
        {
            buffer = buffer.Slice(reader.Position);
            return true;
        }
        return false;
    }

    private void HandleLine(ReadOnlySequence<byte> line)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line);
        }
        catch (JsonException)
        {
            // QEMU writes only JSON here; anything else (a blank line, a half-written object) is skipped, not fatal.
            Ignore(line, "not JSON");
            return;
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                Ignore(line, "not an object");
                return;
            }
            if (root.TryGetProperty("event"u8, out var name) && name.ValueKind == JsonValueKind.String)
            {
                DispatchEvent(root, name.GetString()!);
                return;
            }
            var hasReturn = root.TryGetProperty("return"u8, out var value);
            var hasError = root.TryGetProperty("error"u8, out var error);
            if (hasReturn || hasError)
            {
                if (!root.TryGetProperty("id"u8, out var idElement) || !idElement.TryGetInt64(out var id) || !_pending.TryGetValue(id, out var pending))
                {
                    // A reply to a command that timed out or was cancelled, or one this client never sent.
                    Ignore(line, "reply to no pending command");
                    return;
                }
                if (hasError)
                {
                    var errorClass = error.ValueKind == JsonValueKind.Object && error.TryGetProperty("class"u8, out var c) ? c.GetString() ?? "" : "";
                    var desc = error.ValueKind == JsonValueKind.Object && error.TryGetProperty("desc"u8, out var d) ? d.GetString() ?? "" : error.ToString();
                    pending.Reply.TrySetException(new QmpException(pending.Command, errorClass, desc));
                }
                else
                {
                    pending.Reply.TrySetResult(value.Clone());
                }
                return;
            }
            if (root.TryGetProperty("QMP"u8, out var greeting))
            {
                _greeting.TrySetResult(greeting.Clone());
                return;
            }
            Ignore(line, "neither reply, event nor greeting");
        }
    }

    private void DispatchEvent(JsonElement root, string name)
    {
        var data = root.TryGetProperty("data"u8, out var d) ? d.Clone() : default;
        var timestamp = DateTimeOffset.UtcNow;
        if (root.TryGetProperty("timestamp"u8, out var ts) && ts.ValueKind == JsonValueKind.Object
            && ts.TryGetProperty("seconds"u8, out var s) && s.TryGetInt64(out var seconds)
            && ts.TryGetProperty("microseconds"u8, out var us) && us.TryGetInt64(out var micros))
        {
            timestamp = DateTimeOffset.FromUnixTimeSeconds(seconds).AddTicks(micros * 10);
        }
        var qmpEvent = new QmpEvent(name, data, timestamp);
        var handlers = EventReceived;
        if (handlers is null)
            return;
        foreach (var handler in handlers.GetInvocationList().Cast<Action<QmpEvent>>())
        {
            try
            {
                handler(qmpEvent);
            }
            catch (Exception e)
            {
                // One faulty subscriber must not end the connection or starve the others.
                Log.EventHandlerFailed(_logger, name, SocketPath, e);
            }
        }
    }

    private void Ignore(ReadOnlySequence<byte> line, string why)
    {
        Interlocked.Increment(ref _ignoredLines);
        Log.QmpLineIgnored(_logger, SocketPath, why, (int)Math.Min(line.Length, int.MaxValue));
    }

    private void Close(string reason)
    {
        if (Interlocked.CompareExchange(ref _closedReason, reason, null) is not null)
            return;
        _greeting.TrySetException(new QmpConnectionException($"QMP socket {SocketPath} closed before its greeting: {reason}."));
        foreach (var (_, pending) in _pending)
            pending.Reply.TrySetException(Closed(pending.Command, reason));
        _completion.TrySetResult();
    }

    private QmpConnectionException Closed(string command, string reason) =>
        new($"QMP connection {SocketPath} is closed ({reason}); '{command}' got no reply.");

    private sealed class Pending(string command)
    {
        public string Command { get; } = command;

        public TaskCompletionSource<JsonElement> Reply { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
