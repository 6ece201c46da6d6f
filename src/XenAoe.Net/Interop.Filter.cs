using System.Runtime.InteropServices;

namespace XenAoe.Net;

internal static unsafe partial class Interop
{
    internal const int SoAttachFilter = 26;     // SO_ATTACH_FILTER
    internal const int PacketStatistics = 6;    // PACKET_STATISTICS: struct tpacket_stats, reset on read
    internal const uint PacketOtherHost = 3;    // PACKET_OTHERHOST: unicast to another MAC

    // Classic BPF opcodes (linux/filter.h) and the ancillary offset of skb->pkt_type.
    internal const ushort BpfLdWAbs = 0x20;     // BPF_LD | BPF_W | BPF_ABS
    internal const ushort BpfJeqK = 0x15;       // BPF_JMP | BPF_JEQ | BPF_K
    internal const ushort BpfRetK = 0x06;       // BPF_RET | BPF_K
    internal const uint SkfAdPktType = 0xFFFFF000 + 4; // SKF_AD_OFF + SKF_AD_PKTTYPE

    /// <summary>struct sock_filter, 8 bytes.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct SockFilter(ushort code, byte jumpTrue, byte jumpFalse, uint k)
    {
        public ushort Code = code;
        public byte JumpTrue = jumpTrue;
        public byte JumpFalse = jumpFalse;
        public uint K = k;
    }

    /// <summary>struct sock_fprog, 16 bytes on LP64.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct SockFprog
    {
        public ushort Length;
        public SockFilter* Filter;
    }

    /// <summary>struct tpacket_stats.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct TPacketStats
    {
        public uint Packets;
        public uint Drops;
    }
}
