using System.Runtime.InteropServices;

namespace XenAoe.Os;

/// <summary>The few libc calls beyond System.Diagnostics.Process: namespaces, signals, fsync.</summary>
internal static partial class Interop
{
    private const string Libc = "libc";

    internal const int CloneNewNet = 0x40000000; // CLONE_NEWNET
    internal const int OpenReadOnlyCloexec = 0x80000; // O_RDONLY | O_CLOEXEC

    [LibraryImport(Libc, EntryPoint = "geteuid")]
    internal static partial uint GetEffectiveUserId();

    [LibraryImport(Libc, EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static partial int Open(string path, int flags);

    [LibraryImport(Libc, EntryPoint = "close", SetLastError = true)]
    internal static partial int Close(int fd);

    [LibraryImport(Libc, EntryPoint = "fsync", SetLastError = true)]
    internal static partial int FSync(int fd);

    [LibraryImport(Libc, EntryPoint = "setns", SetLastError = true)]
    internal static partial int SetNs(int fd, int nsType);

    [LibraryImport(Libc, EntryPoint = "kill", SetLastError = true)]
    internal static partial int Kill(int pid, int signal);
}

/// <summary>Signal numbers (x86_64 / aarch64 Linux) and sending them to a process or process group.</summary>
public static class Signal
{
    /// <summary>kill(2): a negative <paramref name="pid"/> signals that process group. False when no such process exists.</summary>
    public static bool Send(int pid, int signal) => Interop.Kill(pid, signal) == 0;

    public const int Interrupt = 2;
    public const int Kill = 9;
    public const int Terminate = 15;
    public const int Continue = 18;
    public const int Stop = 19;
}

/// <summary>Durability of directory entries: a rename or create is durable only once its directory is synced.</summary>
public static class DirectorySync
{
    /// <summary>fsync(2) of the directory; best effort (the rename it follows is atomic either way, this only makes it durable sooner).</summary>
    public static void Sync(string directory)
    {
        var fd = Interop.Open(directory, Interop.OpenReadOnlyCloexec);
        if (fd < 0)
            return;
        _ = Interop.FSync(fd);
        Interop.Close(fd);
    }
}
