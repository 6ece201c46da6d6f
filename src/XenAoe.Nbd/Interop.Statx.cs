using System.Runtime.InteropServices;

namespace XenAoe.Nbd;

internal static partial class Interop
{
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const uint StatxType = 0x1;
    private const int FileTypeMask = 0xF000;
    private const int FileTypeSocket = 0xC000;

    // struct statx is the same on every architecture (unlike struct stat): 256 bytes, stx_mode a u16 at offset 28.
    private const int StatxSize = 256;
    private const int StatxModeOffset = 28;

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int Statx(int directoryFd, string path, int flags, uint mask, byte* buffer);

    /// <summary>True when <paramref name="path"/> itself (not a symlink target) is a unix socket; false for anything else or nothing.</summary>
    public static unsafe bool IsSocketFile(string path)
    {
        var buffer = stackalloc byte[StatxSize];
        if (Statx(AtFdCwd, path, AtSymlinkNoFollow, StatxType, buffer) != 0)
            return false;
        var mode = *(ushort*)(buffer + StatxModeOffset);
        return (mode & FileTypeMask) == FileTypeSocket;
    }
}
