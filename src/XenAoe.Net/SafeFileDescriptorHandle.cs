using Microsoft.Win32.SafeHandles;

namespace XenAoe.Net;

/// <summary>Owns a Linux file descriptor; closing waits until no syscall holds a reference (SafeHandle reference counting), so Dispose never closes a descriptor under a blocked recvmmsg.</summary>
internal sealed class SafeFileDescriptorHandle : SafeHandleMinusOneIsInvalid
{
    public SafeFileDescriptorHandle(int fd)
        : base(ownsHandle: true) => SetHandle(fd);

    public int Fd => (int)handle;

    protected override bool ReleaseHandle() => Interop.Close((int)handle) == 0;
}
