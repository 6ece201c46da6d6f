namespace XenAoe.Net;

/// <summary>
/// Linux calls used by the raw Ethernet layer, one file per call family. Layouts are x86_64 / aarch64 Linux (LP64):
/// pointers and size_t are 8 bytes, which <see cref="nint"/>/<see cref="nuint"/> express.
/// </summary>
internal static partial class Interop
{
    // The runtime maps "libc" to libc.so.6 on Linux.
    private const string Libc = "libc";

    // errno values (asm-generic/errno-base.h, errno.h).
    internal const int EIntr = 4;
    internal const int EBadF = 9;
    internal const int EAgain = 11;
    internal const int EFault = 14;
    internal const int ENoDev = 19;
    internal const int EInval = 22;
    internal const int ENotSock = 88;
    internal const int EMsgSize = 90;
    internal const int ENoProtoOpt = 92;
    internal const int ENetDown = 100;
    internal const int ENoBufs = 105;
}
