using XenAoe.Net;

namespace XenAoe.Agents;

/// <summary>A storage NIC of a CPU or disk server as its daemon reports it: the controller lists it and fences with its MAC.</summary>
/// <param name="Mtu">Bytes; the largest AoE frame the NIC passes.</param>
public sealed record StorageNic(string Name, string Mac, int Mtu)
{
    /// <summary>The named interfaces as they are now on this machine.</summary>
    /// <exception cref="NetworkInterfaceNotFoundException">One is gone.</exception>
    public static StorageNic[] Read(IEnumerable<string> names) =>
        [.. names.Select(NetworkInterfaceInfo.Get).Select(nic => new StorageNic(nic.Name, nic.Mac.ToString(), nic.Mtu))];
}
