using System.Runtime.InteropServices;

namespace XenAoe.Lab;

/// <summary>The few libc calls the lab needs beyond System.Diagnostics.Process.</summary>
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
