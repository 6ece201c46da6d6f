using System.Runtime.InteropServices;

namespace XenAoe.Net;

internal static unsafe partial class Interop
{
    internal const int AfUnix = 1;          // AF_UNIX
    internal const int AfPacket = 17;       // AF_PACKET
    internal const int SockDgram = 2;       // SOCK_DGRAM
    internal const int SockRaw = 3;         // SOCK_RAW
    internal const int SockCloexec = 0x80000; // SOCK_CLOEXEC

    internal const int SolSocket = 1;       // SOL_SOCKET
    internal const int SoSndBuf = 7;        // SO_SNDBUF
    internal const int SoRcvBuf = 8;        // SO_RCVBUF
    internal const int SoRcvTimeo = 20;     // SO_RCVTIMEO (struct timeval, the 64-bit "new" layout on LP64)
    internal const int SoSndBufForce = 32;  // SO_SNDBUFFORCE (CAP_NET_ADMIN, ignores wmem_max)
    internal const int SoRcvBufForce = 33;  // SO_RCVBUFFORCE (CAP_NET_ADMIN, ignores rmem_max)

    internal const int SolPacket = 263;     // SOL_PACKET
    internal const int PacketFanout = 18;   // PACKET_FANOUT: int = group id | mode << 16
    internal const int PacketIgnoreOutgoing = 23; // PACKET_IGNORE_OUTGOING (Linux 4.20)

    internal const int MsgTrunc = 0x20;         // MSG_TRUNC
    internal const int MsgDontWait = 0x40;      // MSG_DONTWAIT
    internal const int MsgWaitForOne = 0x10000; // MSG_WAITFORONE (recvmmsg only)

    /// <summary>struct sockaddr_ll, 20 bytes.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct SockAddrLl
    {
        public ushort Family;    // AF_PACKET
        public ushort Protocol;  // EtherType, network byte order
        public int IfIndex;
        public ushort HaType;
        public byte PktType;
        public byte HaLen;
        public ulong Addr;       // unsigned char sll_addr[8]
    }

    /// <summary>struct timeval on LP64.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct TimeVal
    {
        public long Seconds;
        public long Microseconds;
    }

    [LibraryImport(Libc, EntryPoint = "socket", SetLastError = true)]
    internal static partial int Socket(int domain, int type, int protocol);

    [LibraryImport(Libc, EntryPoint = "bind", SetLastError = true)]
    internal static partial int Bind(int fd, SockAddrLl* address, uint addressLength);

    [LibraryImport(Libc, EntryPoint = "setsockopt", SetLastError = true)]
    internal static partial int SetSockOpt(int fd, int level, int name, void* value, uint valueLength);

    [LibraryImport(Libc, EntryPoint = "getsockopt", SetLastError = true)]
    internal static partial int GetSockOpt(int fd, int level, int name, void* value, uint* valueLength);

    [LibraryImport(Libc, EntryPoint = "send", SetLastError = true)]
    internal static partial nint Send(int fd, byte* buffer, nuint length, int flags);

    [LibraryImport(Libc, EntryPoint = "close", SetLastError = true)]
    internal static partial int Close(int fd);

    internal static int SetSockOptInt(int fd, int level, int name, int value) => SetSockOpt(fd, level, name, &value, sizeof(int));

    internal static int GetSockOptInt(int fd, int level, int name)
    {
        int value = 0;
        uint length = sizeof(int);
        return GetSockOpt(fd, level, name, &value, &length) == 0 ? value : -1;
    }
}
