using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace XenAoe.Lab.Cluster;

/// <summary>A server of the lab: its role and 1-based number ("disk2", "cpu1").</summary>
public readonly record struct LabServer(LabRole Role, int Number)
{
    /// <summary>"disk1", "cpu2": the namespace suffix and the prefix of its switch-side ports.</summary>
    public string Name => $"{(Role == LabRole.Disk ? "disk" : "cpu")}{Number}";

    public override string ToString() => Name;
}

public enum LabRole
{
    Disk,
    Cpu,
}

/// <summary>
/// What <c>xenaoe lab up</c> builds, validated by <see cref="Validate"/>. Names and addresses:
/// <list type="bullet">
/// <item>Namespaces "PREFIX-sw" (the switches and the admin station), "PREFIX-diskN", "PREFIX-cpuN" (N from 1).</item>
/// <item>In PREFIX-sw: bridges san0 and san1 (storage, <see cref="StorageMtu"/>), mgmt and vmnet (MTU 1500), all with STP off
/// and forward delay 0; the switch-side veth of server S on bridge B is named "S-B" ("disk1-san0", "cpu2-vmnet").</item>
/// <item>In each server: eth0 on san0, eth1 on san1 (<see cref="StorageMtu"/>), mgmt0 on mgmt (1500). A CPU server also has
/// bridge vmbr0 (1500) with uplink veth vmup0 plugged into vmnet; VM TAPs go on vmbr0.</item>
/// <item>Host numbers in every subnet: .1 is PREFIX-sw (the admin station; only on mgmt and vmnet), disk N is .(10+N),
/// CPU N is .(20+N). Management: mgmt0 and mgmt; storage: eth0 in <see cref="StorageSubnet0"/>, eth1 in
/// <see cref="StorageSubnet1"/> (addresses only so that the jumbo-frame check can ping; AoE itself needs none);
/// vmnet carries <see cref="VmSubnet"/>.</item>
/// </list>
/// </summary>
public sealed partial record LabPlan
{
    public const string DefaultPrefix = "xa";
    public const string DefaultStateDirectory = "/var/lib/xenaoe/lab";

    /// <summary>Longest prefix: "PREFIX-disk9" must stay a short, readable namespace name.</summary>
    public const int MaxPrefixLength = 8;

    /// <summary>At most 9 servers of each role, so disk numbers (.11-.19) and CPU numbers (.21-.29) never overlap.</summary>
    public const int MaxServersPerRole = 9;

    /// <summary>The MTU of mgmt, vmnet, vmbr0 and VM TAPs.</summary>
    public const int StandardMtu = 1500;

    /// <summary>The storage bridges in PREFIX-sw; server NIC ethI is plugged into StorageSwitches[I].</summary>
    public static readonly IReadOnlyList<string> StorageSwitches = ["san0", "san1"];

    public const string ManagementSwitch = "mgmt";
    public const string VmSwitch = "vmnet";
    public const string ManagementNic = "mgmt0";
    public const string VmBridge = "vmbr0";
    public const string VmUplink = "vmup0";

    /// <summary>Disk servers (default 2, 1..9).</summary>
    public int DiskServers { get; init; } = 2;

    /// <summary>CPU servers (default 2, 1..9).</summary>
    public int CpuServers { get; init; } = 2;

    /// <summary>MTU of san0, san1 and every storage NIC, in bytes (default 9000, 1280..65535).</summary>
    public int StorageMtu { get; init; } = 9000;

    /// <summary>Start of every namespace name (default "xa"): lower-case letters and digits, starting with a letter.</summary>
    public string Prefix { get; init; } = DefaultPrefix;

    /// <summary>Where state.json and the daemons' logs live (default /var/lib/xenaoe/lab).</summary>
    public string StateDirectory { get; init; } = DefaultStateDirectory;

    /// <summary>IPv4, at most /26 (default 10.77.0.0/24).</summary>
    public IPNetwork ManagementSubnet { get; init; } = IPNetwork.Parse("10.77.0.0/24");

    /// <summary>The VMs' public network, IPv4, at most /26 (default 10.77.1.0/24).</summary>
    public IPNetwork VmSubnet { get; init; } = IPNetwork.Parse("10.77.1.0/24");

    /// <summary>Addresses on san0 for the jumbo-frame check (default 10.77.2.0/24).</summary>
    public IPNetwork StorageSubnet0 { get; init; } = IPNetwork.Parse("10.77.2.0/24");

    /// <summary>Addresses on san1 for the jumbo-frame check (default 10.77.3.0/24).</summary>
    public IPNetwork StorageSubnet1 { get; init; } = IPNetwork.Parse("10.77.3.0/24");

    public string SwitchNamespace => $"{Prefix}-sw";

    public IEnumerable<LabServer> Disks => Enumerable.Range(1, DiskServers).Select(n => new LabServer(LabRole.Disk, n));

    public IEnumerable<LabServer> Cpus => Enumerable.Range(1, CpuServers).Select(n => new LabServer(LabRole.Cpu, n));

    /// <summary>Disk servers, then CPU servers.</summary>
    public IEnumerable<LabServer> Servers => Disks.Concat(Cpus);

    /// <summary>PREFIX-sw, then every server namespace.</summary>
    public IEnumerable<string> Namespaces => [SwitchNamespace, .. Servers.Select(NamespaceOf)];

    public string NamespaceOf(LabServer server) => $"{Prefix}-{server.Name}";

    public IPNetwork StorageSubnet(int index) => index switch
    {
        0 => StorageSubnet0,
        1 => StorageSubnet1,
        _ => throw new ArgumentOutOfRangeException(nameof(index), index, "The lab has two storage switches."),
    };

    /// <summary>The server's address in <paramref name="subnet"/>: .(10+N) for disk N, .(20+N) for CPU N.</summary>
    public static IPAddress AddressOf(IPNetwork subnet, LabServer server) =>
        HostAddress(subnet, (server.Role == LabRole.Disk ? 10 : 20) + server.Number);

    /// <summary>The admin station's (PREFIX-sw's) address in <paramref name="subnet"/>: .1.</summary>
    public static IPAddress AdminAddress(IPNetwork subnet) => HostAddress(subnet, 1);

    /// <summary>"10.77.0.11/24": an address with the subnet's prefix length, as `ip addr add` takes it.</summary>
    public static string WithPrefixLength(IPAddress address, IPNetwork subnet) => $"{address}/{subnet.PrefixLength}";

    /// <summary>Returns this plan when every value is usable, else throws one exception listing every problem.</summary>
    /// <exception cref="ArgumentException">Some value is out of range; the message lists all of them.</exception>
    public LabPlan Validate()
    {
        var problems = new List<string>();
        if (DiskServers is < 1 or > MaxServersPerRole)
            problems.Add($"disk servers must be 1..{MaxServersPerRole}, not {DiskServers}");
        if (CpuServers is < 1 or > MaxServersPerRole)
            problems.Add($"CPU servers must be 1..{MaxServersPerRole}, not {CpuServers}");
        if (StorageMtu is < 1280 or > 65535)
            problems.Add($"the storage MTU must be 1280..65535, not {StorageMtu}");
        if (Prefix is null || Prefix.Length > MaxPrefixLength || !PrefixPattern().IsMatch(Prefix))
            problems.Add($"the prefix must be [a-z][a-z0-9]* of at most {MaxPrefixLength} characters, not '{Prefix}'");
        if (string.IsNullOrWhiteSpace(StateDirectory))
            problems.Add("the state directory must be given");
        var subnets = new (string Name, IPNetwork Subnet)[]
        {
            ("management", ManagementSubnet), ("VM", VmSubnet), ("san0", StorageSubnet0), ("san1", StorageSubnet1),
        };
        foreach (var (name, subnet) in subnets)
        {
            if (subnet.BaseAddress.AddressFamily != AddressFamily.InterNetwork || subnet.PrefixLength > 26)
                problems.Add($"the {name} subnet must be IPv4 with room for 64 addresses (at most /26), not {subnet}");
        }
        for (var i = 0; i < subnets.Length; i++)
        {
            for (var j = i + 1; j < subnets.Length; j++)
            {
                if (subnets[i].Subnet.Contains(subnets[j].Subnet.BaseAddress) || subnets[j].Subnet.Contains(subnets[i].Subnet.BaseAddress))
                    problems.Add($"the {subnets[i].Name} subnet {subnets[i].Subnet} and the {subnets[j].Name} subnet {subnets[j].Subnet} overlap");
            }
        }
        if (problems.Count > 0)
            throw new ArgumentException($"The lab plan is not usable: {string.Join("; ", problems)}.");
        return this;
    }

    /// <summary>True for the namespace names a lab with <paramref name="prefix"/> makes: PREFIX-sw, PREFIX-diskN, PREFIX-cpuN.</summary>
    public static bool IsLabNamespace(string prefix, string name) =>
        name.StartsWith(prefix + "-", StringComparison.Ordinal) && LabNamespaceSuffix().IsMatch(name.AsSpan(prefix.Length + 1));

    private static IPAddress HostAddress(IPNetwork subnet, int host)
    {
        Span<byte> bytes = stackalloc byte[4];
        subnet.BaseAddress.TryWriteBytes(bytes, out _);
        var value = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes) + (uint)host;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return new IPAddress(bytes);
    }

    [GeneratedRegex("^[a-z][a-z0-9]*$")]
    private static partial Regex PrefixPattern();

    [GeneratedRegex("^(sw|disk[1-9][0-9]*|cpu[1-9][0-9]*)$")]
    private static partial Regex LabNamespaceSuffix();
}
