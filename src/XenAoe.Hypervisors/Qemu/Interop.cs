using System.Runtime.InteropServices;

namespace XenAoe.Hypervisors.Qemu;

/// <summary>The libc calls the KVM probe needs.</summary>
internal static partial class Interop
{
    private const string Libc = "libc";

    internal const int OpenReadWriteCloexec = 0x2 | 0x80000; // O_RDWR | O_CLOEXEC
    internal const nuint KvmCreateVm = 0xAE01; // _IO(KVMIO, 0x01)

    [LibraryImport(Libc, EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static partial int Open(string path, int flags);

    [LibraryImport(Libc, EntryPoint = "ioctl", SetLastError = true)]
    internal static partial int Ioctl(int fd, nuint request, nint argument);

    [LibraryImport(Libc, EntryPoint = "close", SetLastError = true)]
    internal static partial int Close(int fd);
}
