namespace XenAoe.Nbd;

/// <summary>Per-connection limits of an <see cref="NbdServer"/>. Validated when the server is constructed.</summary>
public sealed class NbdServerOptions
{
    /// <summary>
    /// Requests one connection may have parsed but not yet answered (default 64). At the limit the server stops reading that
    /// socket, so TCP flow control pushes back on the client. QEMU keeps at most 16 in flight per disk, fio as many as its iodepth.
    /// </summary>
    public int MaxInFlightRequests { get; init; } = 64;

    /// <summary>
    /// Payload bytes (write data received, read data being prepared or sent) one connection may hold at once (default 64 MiB).
    /// A single request of up to <see cref="NbdServer.MaxPayloadLength"/> is always admitted when nothing else is in flight.
    /// </summary>
    public long MaxInFlightBytes { get; init; } = 64L << 20;

    /// <summary>
    /// Connections served at once (default 1024); further clients are closed as soon as they are accepted. Each connection holds
    /// about 200 KiB of buffers, plus up to 64 KiB per request in flight.
    /// </summary>
    public int MaxConnections { get; init; } = 1024;

    /// <summary>
    /// Runs each request's device call on the thread that parsed it instead of queueing it to the thread pool (default false).
    /// Only for devices whose calls never block (they return a pending ValueTask instead, as the mirror does): a blocking call
    /// stalls the connection's receive loop, and with a synchronous device the connection's requests no longer overlap.
    /// Measured with fio (4 KiB random read/write, queue depth 32, a file on tmpfs, 2 shared cores), server CPU per request:
    /// thread pool 9-12 us; inline 8.6-10 us; inline with DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 in the host process
    /// (socket continuations run on the epoll thread, so a request goes from recv to reply without a thread hand-off)
    /// 4.3-5 us, against 5-7.2 us for `nbdkit file` on the same file.
    /// </summary>
    public bool RunRequestsInline { get; init; }

    /// <summary>Time a client has from connecting to choosing an export (default 30 s); it is disconnected after that.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Clock for the handshake timeout.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxInFlightRequests, 1, nameof(MaxInFlightRequests));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxConnections, 1, nameof(MaxConnections));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxInFlightBytes, NbdServer.MaxPayloadLength, nameof(MaxInFlightBytes));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(HandshakeTimeout, TimeSpan.Zero, nameof(HandshakeTimeout));
        ArgumentNullException.ThrowIfNull(TimeProvider, nameof(TimeProvider));
    }
}
