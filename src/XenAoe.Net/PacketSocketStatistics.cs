namespace XenAoe.Net;

/// <summary>Kernel counters of a packet socket over one interval (see <see cref="PacketSocket.ReadKernelStatistics"/>).</summary>
/// <param name="Received">Frames that passed the socket's filters, dropped ones included.</param>
/// <param name="Dropped">Frames dropped because the receive buffer was full.</param>
public readonly record struct PacketSocketStatistics(long Received, long Dropped);
