namespace XenAoe.Net;

/// <summary>A raw-socket syscall failed in a way the caller cannot retry past.</summary>
public sealed class PacketSocketException : IOException
{
    public PacketSocketException(string operation, int errno, string? interfaceName = null)
        : base(interfaceName is null
            ? $"{operation} failed: {ThrowHelper.ErrorMessage(errno)} (errno {errno})."
            : $"{operation} on interface '{interfaceName}' failed: {ThrowHelper.ErrorMessage(errno)} (errno {errno}).")
    {
        Operation = operation;
        ErrorNumber = errno;
        InterfaceName = interfaceName;
    }

    /// <summary>The syscall, as in "setsockopt(PACKET_FANOUT)".</summary>
    public string Operation { get; }

    /// <summary>The Linux errno.</summary>
    public int ErrorNumber { get; }

    public string? InterfaceName { get; }
}

/// <summary>No interface of that name exists in the calling thread's network namespace.</summary>
public sealed class NetworkInterfaceNotFoundException : IOException
{
    public NetworkInterfaceNotFoundException(string interfaceName)
        : base($"Network interface '{interfaceName}' does not exist in this network namespace.") => InterfaceName = interfaceName;

    public string InterfaceName { get; }
}
