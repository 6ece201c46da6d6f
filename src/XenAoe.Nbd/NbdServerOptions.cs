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

    /// <summary>Time a client has from connecting to choosing an export (default 30 s); it is disconnected after that.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Clock for the handshake timeout.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxInFlightRequests, 1, nameof(MaxInFlightRequests));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxInFlightBytes, NbdServer.MaxPayloadLength, nameof(MaxInFlightBytes));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(HandshakeTimeout, TimeSpan.Zero, nameof(HandshakeTimeout));
        ArgumentNullException.ThrowIfNull(TimeProvider, nameof(TimeProvider));
    }
}
