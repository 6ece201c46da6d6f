using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace XenAoe.Lab.Guests;

/// <summary>How a VM guest configures <c>eth0</c> (MTU 1500) and its host name; passed on the kernel command line.</summary>
/// <param name="Address">The guest's IPv4 address.</param>
/// <param name="PrefixLength">Network prefix length, 0 to 32 (24 for a /24).</param>
/// <param name="Hostname">Host name: letters, digits and dashes, at most 63 characters.</param>
/// <param name="Gateway">Default route; <see langword="null"/> for none.</param>
public sealed partial record VmGuestNetwork(IPAddress Address, int PrefixLength, string Hostname, IPAddress? Gateway = null)
{
    /// <summary>"address/prefix", as the guest's <c>ip addr add</c> takes it.</summary>
    public string Cidr => $"{Address}/{PrefixLength}";

    /// <summary>The <c>xenaoe.*</c> kernel parameters the guest's init reads.</summary>
    /// <exception cref="ArgumentException">An address is not IPv4, the prefix is out of range or the host name is not valid.</exception>
    public string ToKernelParameters()
    {
        if (Address.AddressFamily != AddressFamily.InterNetwork)
            throw new ArgumentException($"Guest address {Address} is not IPv4.", nameof(Address));
        if (Gateway is { AddressFamily: not AddressFamily.InterNetwork })
            throw new ArgumentException($"Gateway {Gateway} is not IPv4.", nameof(Gateway));
        if ((uint)PrefixLength > 32)
            throw new ArgumentOutOfRangeException(nameof(PrefixLength), PrefixLength, "An IPv4 prefix length is 0 to 32.");
        if (!HostnamePattern().IsMatch(Hostname))
            throw new ArgumentException($"Host name '{Hostname}' must be letters, digits and dashes, 1 to 63 characters, not starting with a dash.", nameof(Hostname));
        var parameters = $"xenaoe.ip={Cidr} xenaoe.hostname={Hostname}";
        return Gateway is null ? parameters : $"{parameters} xenaoe.gw={Gateway}";
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")]
    private static partial Regex HostnamePattern();
}
