using System.Net;
using XenAoe.Agents.Configuration;
using XenAoe.Hypervisors;

namespace XenAoe.Agents.Host;

/// <summary>How a CPU server's daemon runs. <see cref="Validate"/> is called at start.</summary>
public sealed class HostDaemonOptions
{
    /// <summary>The keys of <c>/etc/xenaoe/host.conf</c> (and of <c>xenaoe host serve</c>'s flags).</summary>
    public static readonly ConfigSchema Schema = new("host",
    [
        new("name", "the machine's host name", "The host's name in listings and the controller's inventory."),
        new("state_dir", "/var/lib/xenaoe/host", "VM definitions, run directories, the API and NBD sockets. Never deleted by the package, even on purge."),
        new("interfaces", "", "Storage NICs (required): every one is a path to every disk server.", Multiple: true, Alias: "-i"),
        new("storage_mtu", "1500", "The MTU the storage network is built for (1500-65535); the daemon refuses to start when a storage NIC's MTU is lower."),
        new("listen", "", "Management address:port of the API (other hosts send migrations here, the controller starts VMs through it), e.g. 10.0.0.21:7300; not a wildcard; unset: the local unix socket only."),
        new("token_file", "", "The cluster's API token file, required with listen: written by `xenaoe join` (created with a random token if missing)."),
        new("vm_bridge", "", "Bridge the VMs' TAP devices join; unset: TAPs stay unattached."),
        new("vm_mtu", "1500", "MTU of the VMs' TAP devices (68-65535)."),
        new("accel", "auto", "CPU virtualization: auto (KVM if it works), kvm or tcg."),
        new("leg_timeout", "1.5", "Seconds (0.1-60) without an answer before a mirror leg is dropped: how long a dead disk server stalls a VM's writes."),
        .. ControllerRegistration.Keys,
    ]);

    /// <exception cref="ConfigException">A value is malformed, out of range, or names a NIC this machine lacks.</exception>
    public static HostDaemonOptions From(DaemonSettings settings)
    {
        var listen = settings.Endpoint("listen");
        var tokenFile = settings.String("token_file");
        if (listen is not null && tokenFile is null)
            throw settings.Error("listen", "needs token_file: the API starts and kills VMs, so it is never open on the network without a token");
        if (listen is { Address: var address } && (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any)))
            throw settings.Error("listen", "needs the management address itself (migrations are sent to it), not a wildcard");
        return new HostDaemonOptions
        {
            Name = settings.String("name", Environment.MachineName),
            StateDirectory = Path.GetFullPath(settings.String("state_dir", "/var/lib/xenaoe/host")),
            StorageInterfaces = settings.Interfaces("interfaces", settings.Int("storage_mtu", 1500, 1500, 65535)),
            Listen = listen,
            Token = tokenFile is null ? null : ApiToken.ReadOrCreate(tokenFile),
            VmBridge = settings.String("vm_bridge"),
            VmMtu = settings.Int("vm_mtu", 1500, 68, 65535),
            Accelerator = settings.Enum("accel", Accelerator.Auto),
            LegTimeout = settings.Seconds("leg_timeout", TimeSpan.FromSeconds(1.5), 0.1, 60),
            Registration = ControllerRegistration.From(settings, listen, tokenFile),
        };
    }

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

    /// <summary>Where it registers itself at start; null: nowhere (a host registered by hand, or none).</summary>
    public ControllerRegistration? Registration { get; init; }

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
