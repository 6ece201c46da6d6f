using System.Text.RegularExpressions;

namespace XenAoe.Hypervisors;

/// <summary>What to run: the hypervisor-neutral description of one VM.</summary>
/// <param name="Name">Host-unique name, <c>[a-z0-9][a-z0-9-]{0,31}</c>; also names the VM's run directory.</param>
/// <param name="MemoryMiB">Guest RAM in MiB.</param>
/// <param name="Vnc">Where the VNC server listens; null puts it on a unix socket in the VM's run directory.</param>
public sealed partial record VmSpec(
    string Name,
    Guid Uuid,
    int Cpus,
    int MemoryMiB,
    VmBoot Boot,
    IReadOnlyList<VmDisk> Disks,
    IReadOnlyList<VmNic> Nics,
    VncListen? Vnc = null)
{
    /// <summary>Throws <see cref="ArgumentException"/> naming the first field that is out of range.</summary>
    public void Validate()
    {
        if (!NamePattern().IsMatch(Name))
            throw new ArgumentException($"VM name '{Name}' must match [a-z0-9][a-z0-9-]{{0,31}}.", nameof(Name));
        if (Cpus is < 1 or > 255)
            throw new ArgumentException($"VM {Name}: {Cpus} CPUs is outside 1..255.", nameof(Cpus));
        if (MemoryMiB is < 16 or > 4 * 1024 * 1024)
            throw new ArgumentException($"VM {Name}: {MemoryMiB} MiB of memory is outside 16 MiB..4 TiB.", nameof(MemoryMiB));
        ArgumentNullException.ThrowIfNull(Boot);
        if (string.IsNullOrEmpty(Boot.KernelPath))
            throw new ArgumentException($"VM {Name}: a kernel path is required (direct kernel boot).", nameof(Boot));
        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var disk in Disks)
        {
            if (!IdPattern().IsMatch(disk.Id) || !ids.Add(disk.Id))
                throw new ArgumentException($"VM {Name}: disk id '{disk.Id}' must be unique and match [a-z0-9][a-z0-9-]{{0,31}}.", nameof(Disks));
            if (string.IsNullOrEmpty(disk.NbdSocketPath))
                throw new ArgumentException($"VM {Name}: disk {disk.Id} has no NBD socket path.", nameof(Disks));
        }
        foreach (var nic in Nics)
        {
            if (!IdPattern().IsMatch(nic.Id) || !ids.Add(nic.Id))
                throw new ArgumentException($"VM {Name}: NIC id '{nic.Id}' must be unique among disks and NICs and match [a-z0-9][a-z0-9-]{{0,31}}.", nameof(Nics));
            if (!MacPattern().IsMatch(nic.Mac))
                throw new ArgumentException($"VM {Name}: NIC {nic.Id} MAC '{nic.Mac}' is not six colon-separated hex bytes.", nameof(Nics));
            if (nic.TapName.Length is 0 or > 15 || nic.TapName.Any(c => c is ',' or '/' || char.IsWhiteSpace(c)))
                throw new ArgumentException($"VM {Name}: NIC {nic.Id} TAP name '{nic.TapName}' is not a Linux interface name.", nameof(Nics));
        }
        if (Vnc is { } vnc && (vnc.Display is < 0 or > 65535 - 5900 || string.IsNullOrEmpty(vnc.Host)))
            throw new ArgumentException($"VM {Name}: VNC {vnc.Host}:{vnc.Display} is not a host and display number.", nameof(Vnc));
    }

    public static bool IsValidName(string name) => NamePattern().IsMatch(name);

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,31}$")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,31}$")]
    private static partial Regex IdPattern();

    [GeneratedRegex("^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")]
    private static partial Regex MacPattern();
}

/// <summary>Direct kernel boot.</summary>
public sealed record VmBoot(string KernelPath, string? InitrdPath, string KernelCommandLine);

/// <summary>A virtio disk backed by an NBD export reached over a unix socket.</summary>
public sealed record VmDisk(string Id, string NbdSocketPath, string ExportName, bool ReadOnly = false);

/// <summary>A virtio NIC on an existing TAP device.</summary>
public sealed record VmNic(string Id, string TapName, string Mac);

/// <summary>A VNC server on TCP: <paramref name="Host"/> and display number (port 5900 + display).</summary>
public sealed record VncListen(string Host, int Display)
{
    public int Port => 5900 + Display;
}
