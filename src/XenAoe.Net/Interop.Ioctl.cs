using System.Runtime.InteropServices;

namespace XenAoe.Net;

internal static unsafe partial class Interop
{
    // netdevice(7) requests; each takes a struct ifreq.
    internal const nuint SiocGIfHwAddr = 0x8927;
    internal const nuint SiocGIfMtu = 0x8921;
    internal const nuint SiocGIfIndex = 0x8933;

    internal const ushort ArphrdLoopback = 772; // ARPHRD_LOOPBACK

    internal const int IfNameSize = 16; // IFNAMSIZ, including the terminating NUL

    /// <summary>struct ifreq, 40 bytes: the name, then a 24-byte union (an int for index and MTU, a sockaddr for the hardware address).</summary>
    [StructLayout(LayoutKind.Explicit, Size = 40)]
    internal struct IfReq
    {
        [FieldOffset(0)] public fixed byte Name[IfNameSize];
        [FieldOffset(16)] public int Value;           // ifr_ifindex, ifr_mtu
        [FieldOffset(16)] public ushort HwFamily;     // ifr_hwaddr.sa_family (an ARPHRD_* type)
        [FieldOffset(18)] public fixed byte HwData[14]; // ifr_hwaddr.sa_data; a MAC takes the first 6
    }

    /// <summary>struct if_nameindex, 16 bytes; the array ends with a zero index and a null name.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct IfNameIndex
    {
        public uint Index;
        public byte* Name;
    }

    // ioctl is variadic in C; a fixed (int, unsigned long, void*) signature passes the same registers on x86_64 and aarch64 Linux.
    [LibraryImport(Libc, EntryPoint = "ioctl", SetLastError = true)]
    internal static partial int Ioctl(int fd, nuint request, IfReq* ifreq);

    // glibc answers this over rtnetlink in the calling thread's network namespace.
    [LibraryImport(Libc, EntryPoint = "if_nameindex", SetLastError = true)]
    internal static partial IfNameIndex* IfNameIndexes();

    [LibraryImport(Libc, EntryPoint = "if_freenameindex")]
    internal static partial void IfFreeNameIndex(IfNameIndex* indexes);
}
