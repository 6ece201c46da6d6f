using System.Runtime.InteropServices;

namespace XenAoe.IntegrationTests.DiskServer;

internal static partial class Interop
{
    /// <summary>cachestat(2), Linux 6.5 and later: page-cache state of a file range, dirty and under-writeback pages included.</summary>
    private const long SysCachestat = 451;

    [StructLayout(LayoutKind.Sequential)]
    public struct CachestatRange
    {
        public ulong Offset;
        public ulong Length; // 0: to the end of the file
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct Cachestat
    {
        public ulong Cached;
        public ulong Dirty;
        public ulong Writeback;
        public ulong Evicted;
        public ulong RecentlyEvicted;
    }

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, int fd, ref CachestatRange range, out Cachestat stat, uint flags);

    /// <summary>The page-cache state of the whole file at <paramref name="path"/>.</summary>
    public static Cachestat CachestatOf(string path)
    {
        using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var range = new CachestatRange();
        if (Syscall(SysCachestat, (int)file.DangerousGetHandle(), ref range, out var stat, 0) != 0)
            throw new IOException($"cachestat {path}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        return stat;
    }
}
