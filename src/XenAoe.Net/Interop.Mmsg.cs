using System.Runtime.InteropServices;

namespace XenAoe.Net;

internal static unsafe partial class Interop
{
    /// <summary>struct iovec, 16 bytes.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    /// <summary>struct msghdr, 56 bytes (4 bytes of padding after msg_namelen and after msg_flags).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    /// <summary>struct mmsghdr, 64 bytes: a msghdr plus the byte count the kernel fills in.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct MMsgHdr
    {
        public MsgHdr Header;
        public uint Length;
    }

    /// <summary>recvmmsg(2). The timeout argument is always null: it is only checked after a datagram arrives, so SO_RCVTIMEO bounds the wait instead.</summary>
    [LibraryImport(Libc, EntryPoint = "recvmmsg", SetLastError = true)]
    internal static partial int RecvMMsg(int fd, MMsgHdr* messages, uint count, int flags, void* timeout);

    [LibraryImport(Libc, EntryPoint = "sendmmsg", SetLastError = true)]
    internal static partial int SendMMsg(int fd, MMsgHdr* messages, uint count, int flags);
}
