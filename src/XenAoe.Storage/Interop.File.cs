using System.Runtime.InteropServices;

namespace XenAoe.Storage;

internal static partial class Interop
{
    public const int ORdOnly = 0, ORdWr = 2, OCreat = 0x40, OCloexec = 0x80000;
    public const int LockExclusive = 2, LockNonBlocking = 4;
    public const ulong BlkGetSize64 = 0x80081272;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    public static partial int FDataSync(SafeHandle fd);

    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    public static partial int FLock(SafeHandle fd, int operation);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static partial int IoctlGetSize(SafeHandle fd, ulong request, out ulong size);
}
