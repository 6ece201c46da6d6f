using System.Runtime.InteropServices;
using System.Text;
using XenAoe.Aoe;

namespace XenAoe.Net;

/// <summary>
/// A network interface of the calling thread's network namespace, read with netdevice(7) ioctls.
/// The ioctls answer for the namespace of the socket they are issued on, which is the calling thread's;
/// /sys/class/net would answer for the namespace sysfs was mounted in, which differs when a thread has
/// entered another namespace with setns(2) (as worker threads and tests do).
/// </summary>
/// <param name="Name">Kernel name, at most 15 bytes.</param>
/// <param name="Index">ifindex, what AF_PACKET sockets bind to.</param>
/// <param name="Mac">Hardware address; zero for interfaces without one.</param>
/// <param name="Mtu">Largest payload after the 14-byte Ethernet header, in bytes.</param>
public sealed record NetworkInterfaceInfo(string Name, int Index, MacAddress Mac, int Mtu)
{
    /// <summary>Reads the interface's current index, MAC and MTU.</summary>
    /// <exception cref="NetworkInterfaceNotFoundException">No interface of that name exists in this namespace.</exception>
    public static NetworkInterfaceInfo Get(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (Encoding.UTF8.GetByteCount(name) >= Interop.IfNameSize)
            ThrowHelper.ThrowInterfaceNotFound(name);
        using var control = OpenControlSocket();
        return TryGet(control.Fd, name, out var info, out _) ? info : throw new NetworkInterfaceNotFoundException(name);
    }

    /// <summary>Every interface of the calling thread's network namespace except loopback, in ifindex order.</summary>
    public static unsafe IReadOnlyList<NetworkInterfaceInfo> List()
    {
        var names = new List<string>();
        var indexes = Interop.IfNameIndexes();
        if (indexes == null)
            ThrowHelper.ThrowSocketError("if_nameindex", Marshal.GetLastPInvokeError());
        try
        {
            for (var p = indexes; p->Index != 0; p++)
                names.Add(new string((sbyte*)p->Name));
        }
        finally
        {
            Interop.IfFreeNameIndex(indexes);
        }

        using var control = OpenControlSocket();
        var result = new List<NetworkInterfaceInfo>(names.Count);
        foreach (var name in names)
        {
            // An interface can disappear between the listing and the ioctls; it is simply not listed.
            if (TryGet(control.Fd, name, out var info, out var hardwareType) && hardwareType != Interop.ArphrdLoopback)
                result.Add(info);
        }
        result.Sort(static (a, b) => a.Index.CompareTo(b.Index));
        return result;
    }

    private static SafeFileDescriptorHandle OpenControlSocket()
    {
        // Any socket serves netdevice ioctls for its namespace; AF_UNIX needs no privilege and no IPv4 stack.
        var fd = Interop.Socket(Interop.AfUnix, Interop.SockDgram | Interop.SockCloexec, 0);
        if (fd < 0)
            ThrowHelper.ThrowSocketError("socket(AF_UNIX)", Marshal.GetLastPInvokeError());
        return new SafeFileDescriptorHandle(fd);
    }

    private static unsafe bool TryGet(int fd, string name, out NetworkInterfaceInfo info, out ushort hardwareType)
    {
        info = null!;
        hardwareType = 0;
        Interop.IfReq request = default;
        var nameBytes = new Span<byte>(request.Name, Interop.IfNameSize - 1);
        if (!Encoding.UTF8.TryGetBytes(name, nameBytes, out _))
            return false;

        if (Interop.Ioctl(fd, Interop.SiocGIfIndex, &request) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno == Interop.ENoDev)
                return false;
            ThrowHelper.ThrowSocketError("ioctl(SIOCGIFINDEX)", errno, name);
        }
        var index = request.Value;

        if (Interop.Ioctl(fd, Interop.SiocGIfMtu, &request) != 0)
            return ErrorOrGone("ioctl(SIOCGIFMTU)", name);
        var mtu = request.Value;

        if (Interop.Ioctl(fd, Interop.SiocGIfHwAddr, &request) != 0)
            return ErrorOrGone("ioctl(SIOCGIFHWADDR)", name);
        hardwareType = request.HwFamily;
        var mac = MacAddress.Read(new ReadOnlySpan<byte>(request.HwData, MacAddress.Length));

        info = new NetworkInterfaceInfo(name, index, mac, mtu);
        return true;
    }

    private static bool ErrorOrGone(string operation, string name)
    {
        var errno = Marshal.GetLastPInvokeError();
        if (errno != Interop.ENoDev)
            ThrowHelper.ThrowSocketError(operation, errno, name);
        return false;
    }
}
