using System.Net;
using XenAoe.Hypervisors;

namespace XenAoe.Agents.Host;

/// <summary>How a CPU server's daemon runs. <see cref="Validate"/> is called at start.</summary>
public sealed class HostDaemonOptions
{
    /// <summary>The host's name in listings and the controller's inventory.</summary>
    public string Name { get; init; } = Environment.MachineName;

    /// <summary>VM definitions, the hypervisor's run directory, the NBD socket. Default <c>/var/lib/xenaoe/host</c>.</summary>
    public string StateDirectory { get; init; } = "/var/lib/xenaoe/host";

    /// <summary>The local API's unix socket; default <c>STATE/host.sock</c>.</summary>
    public string? ApiSocket { get; init; }

    /// <summary>TCP address:port for the API on the management network (other hosts call it during migrations); null: unix socket only.</summary>
    public IPEndPoint? Listen { get; init; }

    /// <summary>The cluster's API token: required of every request to <see cref="Listen"/>, and sent to other hosts in migrations.</summary>
    public string? Token { get; init; }

    /// <summary>Storage NICs: every one is a path to every disk server.</summary>
    public required IReadOnlyList<string> StorageInterfaces { get; init; }

    /// <summary>Bridge the VMs' TAP devices join; null leaves TAPs unattached.</summary>
    public string? VmBridge { get; init; }

    /// <summary>MTU of the VMs' TAP devices.</summary>
    public int VmMtu { get; init; } = 1500;

    public Accelerator Accelerator { get; init; } = Accelerator.Auto;

    /// <summary>How long a guest gets to power off on stop before it is forced off.</summary>
    public TimeSpan StopGrace { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>A mirror leg with no answering path this long is dropped: how long a dead disk server stalls a VM's writes.</summary>
    public TimeSpan LegTimeout { get; init; } = TimeSpan.FromSeconds(1.5);

    public string ApiSocketPath => ApiSocket ?? Path.Combine(StateDirectory, "host.sock");

    public string NbdSocketPath => Path.Combine(StateDirectory, "nbd.sock");

    public string RunDirectory => Path.Combine(StateDirectory, "run");

    /// <summary>The URL other hosts and the CLI reach this API at over the management network; null without <see cref="Listen"/>.</summary>
    public string? ApiUrl => Listen is null ? null : $"http://{Listen}";

    public void Validate()
    {
        if (StorageInterfaces.Count == 0)
            throw new ArgumentException("a CPU server needs at least one storage NIC (--interface)");
        if (string.IsNullOrWhiteSpace(Name))
            throw new ArgumentException("the host needs a name");
        if (Listen is not null && Token is null)
            throw new ArgumentException("--listen needs --token-file: the API starts and kills VMs, so it is never open on the network without a token");
        if (Listen is { Address: var address } && (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any)))
            throw new ArgumentException("--listen needs the management address itself (migrations are sent to it), not a wildcard");
    }
}
