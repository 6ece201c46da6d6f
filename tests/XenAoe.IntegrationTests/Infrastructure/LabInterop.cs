using System.Runtime.InteropServices;

namespace XenAoe.IntegrationTests.Infrastructure;

/// <summary>The few libc calls the lab needs beyond System.Diagnostics.Process.</summary>
internal static partial class LabInterop
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

    [LibraryImport(Libc, EntryPoint = "setns", SetLastError = true)]
    internal static partial int SetNs(int fd, int nsType);

    [LibraryImport(Libc, EntryPoint = "kill", SetLastError = true)]
    internal static partial int Kill(int pid, int signal);
}

/// <summary>Signal numbers (x86_64 / aarch64 Linux) for <see cref="LabProcess.KillAsync"/> and <see cref="LabProcess.Signal"/>.</summary>
public static class Signal
{
    public const int Interrupt = 2;
    public const int Kill = 9;
    public const int Terminate = 15;
    public const int Continue = 18;
    public const int Stop = 19;
}
