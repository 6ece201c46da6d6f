namespace XenAoe.Net;

/// <summary>How a PACKET_FANOUT group spreads incoming frames over its sockets (measured on veth with two sockets and two senders).</summary>
public enum PacketFanoutMode
{
    /// <summary>PACKET_FANOUT_LB: round-robin, frame by frame, regardless of sender; measured: strict alternation, 500/500 of 1000.
    /// Consecutive frames of one initiator land on different sockets, so their order across workers is not kept.</summary>
    LoadBalance = 1,

    /// <summary>PACKET_FANOUT_HASH: by the kernel's flow hash. The hash of a non-IP frame covers no MAC address, so every
    /// AoE frame goes to the same socket (measured: 0/1000 with two senders); useless for AoE.</summary>
    Hash = 0,

    /// <summary>PACKET_FANOUT_CPU: by the CPU that received the frame; on veth that is the sending CPU (measured: 0/1000
    /// from one sending thread).</summary>
    Cpu = 2,
}

/// <summary>Settings of a <see cref="PacketSocket"/>.</summary>
public sealed record PacketSocketOptions
{
    /// <summary>
    /// PACKET_FANOUT group id (0..65535, per network namespace). Sockets on the same interface and EtherType that join the
    /// same group share the incoming frames instead of each getting a copy, so several worker threads can each own a socket.
    /// Null (the default) joins no group.
    /// </summary>
    public int? FanoutGroup { get; init; }

    /// <summary>How the fanout group spreads frames; <see cref="PacketFanoutMode.LoadBalance"/> by default.</summary>
    public PacketFanoutMode FanoutMode { get; init; } = PacketFanoutMode.LoadBalance;

    /// <summary>
    /// Socket receive buffer in bytes (4 MiB by default; 0 keeps the kernel default). Set with SO_RCVBUFFORCE so it may exceed
    /// net.core.rmem_max, falling back to SO_RCVBUF (capped by rmem_max) without CAP_NET_ADMIN. The kernel doubles the value
    /// for bookkeeping and charges each queued frame its buffer's true size, not its length: measured on veth, 832 bytes for a
    /// 60-byte frame, 2304 for 1024..1514 bytes, 13120 for a 9014-byte jumbo frame. So the kernel default (208 KiB) holds only
    /// about 16 jumbo frames, and 4 MiB (8 MiB after doubling) about 640; size it to the frames a target advertises it queues.
    /// </summary>
    public int ReceiveBufferBytes { get; init; } = 4 << 20;

    /// <summary>Socket send buffer in bytes (4 MiB by default; 0 keeps the kernel default); SO_SNDBUFFORCE, then SO_SNDBUF.</summary>
    public int SendBufferBytes { get; init; } = 4 << 20;

    /// <summary>
    /// Longest a <see cref="PacketSocket.Receive(PacketBatch)"/> blocks when nothing arrives (SO_RCVTIMEO), 200 ms by default; a worker
    /// observes cancellation at least this often. Must be positive.
    /// </summary>
    public TimeSpan ReceiveTimeout { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// Whether to receive unicast frames addressed to other MACs (PACKET_OTHERHOST); false by default. A bridge floods
    /// unicast frames for MACs it has not learned yet to every port, and veth has no hardware filter, so without this a
    /// socket sees frames meant for other hosts (measured: a unicast to an unknown MAC reaches every host on the bridge).
    /// When false, a two-instruction classic BPF filter drops them in the kernel before they take receive-buffer space.
    /// </summary>
    public bool AcceptOtherHosts { get; init; }

    internal static readonly PacketSocketOptions Default = new();
}
