namespace XenAoe.Target;

public sealed class TargetOptions
{
    /// <summary>
    /// Outstanding frames advertised in config replies. Honest only if every NIC's sockets can queue this many full frames:
    /// the NIC server sizes its receive buffers from it. Linux caps its window at 128.
    /// </summary>
    public ushort BufferCount { get; set; } = 128;

    /// <summary>Reported in config replies.</summary>
    public ushort FirmwareVersion { get; set; } = 0x0100;

    /// <summary>
    /// Receive threads per NIC (each its own socket in a PACKET_FANOUT group), so a slow disk I/O does not stall the NIC.
    /// Defaults to 2, or 1 when the process may use only one CPU (taskset): two workers on one core only add context switches.
    /// </summary>
    public int WorkersPerInterface { get; set; } = Math.Min(2, Environment.ProcessorCount);

    /// <summary>
    /// After a batch, how long a worker keeps polling (non-blocking recvmmsg) for the next frame before it sleeps: trades a
    /// little CPU after traffic for no wake-up latency while traffic flows. Zero sleeps at once; an idle server never spins.
    /// </summary>
    public TimeSpan SpinAfterBusy { get; set; } = TimeSpan.FromMicroseconds(50);

    /// <summary>
    /// Group commit: the longest a group of write-through writes stays open for the writes of later receive batches, counted
    /// from its first write. A group is synced as soon as the socket has nothing more, so this bounds the wait only under a
    /// stream of requests; a group also closes at four receive batches of writes. Zero: a group is one receive batch.
    /// </summary>
    public TimeSpan GroupCommitWindow { get; set; } = TimeSpan.FromMicroseconds(500);

    /// <summary>Frames taken per recvmmsg call.</summary>
    public int BatchSize { get; set; } = 32;
}
