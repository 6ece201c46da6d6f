using XenAoe.Agents.Configuration;
using XenAoe.Target;

namespace XenAoe.Agents.Disk;

public sealed class DiskServerOptions
{
    /// <summary>The keys of <c>/etc/xenaoe/disk.conf</c> (and of <c>xenaoe disk serve</c>'s flags).</summary>
    public static readonly ConfigSchema Schema = new("disk",
    [
        new("name", "the machine's host name", "The disk server's name in listings and the controller's inventory."),
        new("shelf", "", "AoE shelf (0-65534) of every volume this server exports, unique in the cluster; unset: the controller keeps the one it gave, or gives the lowest free one."),
        new("pool", "/var/lib/xenaoe/pool", "Storage pool directory: volume images and their metadata (created if missing). Never deleted by the package, even on purge.", Alias: "-p"),
        new("interfaces", "", "Storage NICs to serve on (required); a target answers on every one, which is how initiators find several paths.", Multiple: true, Alias: "-i"),
        new("storage_mtu", "1500", "The MTU the storage network is built for (1500-65535); the server refuses to start when a storage NIC's MTU is lower (9000 on jumbo-frame switches)."),
        new("listen", "", "Management address:port of the API (the controller fences and creates volumes through it), e.g. 10.0.0.11:7200; unset: the local unix socket only."),
        new("token_file", "", "The cluster's API token file, required with listen: written by `xenaoe join` (created with a random token if missing)."),
        new("buffers", "128", "Outstanding frames advertised to initiators (1-65535); really queued."),
        new("workers", "2", "Receive threads per NIC (1-64); 1 on a machine with a single usable CPU."),
        new("batch", "32", "Frames per recvmmsg/sendmmsg (1-1024)."),
        new("spin_us", "50", "Microseconds a worker polls for the next frame after a batch before sleeping (0-10000; 0: never poll, for shared cores)."),
        new("group_us", "500", "Group commit: microseconds a group of write-through writes may stay open for later writes to share its fdatasync (0-10000; 0: a group is one receive batch)."),
        .. ControllerRegistration.Keys,
    ]);

    /// <exception cref="ConfigException">A value is malformed, out of range, or names a NIC this machine lacks.</exception>
    public static DiskServerOptions From(DaemonSettings settings)
    {
        var defaults = new TargetOptions();
        var listen = settings.Endpoint("listen");
        var tokenFile = settings.String("token_file");
        if (listen is not null && tokenFile is null)
            throw settings.Error("listen", "needs token_file: the API creates, deletes and fences volumes, so it is never open on the network without a token");
        var shelf = settings.String("shelf") is null ? (ushort?)null : (ushort)settings.Int("shelf", 0, 0, 0xFFFE);
        return new DiskServerOptions
        {
            Name = settings.String("name", Environment.MachineName),
            Shelf = shelf,
            Registration = ControllerRegistration.From(settings, listen, tokenFile),
            PoolDirectory = settings.String("pool", "/var/lib/xenaoe/pool"),
            Interfaces = settings.Interfaces("interfaces", settings.Int("storage_mtu", 1500, 1500, 65535)),
            Listen = listen,
            Token = tokenFile is null ? null : ApiToken.ReadOrCreate(tokenFile),
            Target = new TargetOptions
            {
                BufferCount = (ushort)settings.Int("buffers", defaults.BufferCount, 1, ushort.MaxValue),
                WorkersPerInterface = settings.Int("workers", defaults.WorkersPerInterface, 1, 64),
                BatchSize = settings.Int("batch", defaults.BatchSize, 1, 1024),
                SpinAfterBusy = TimeSpan.FromMicroseconds(settings.Int("spin_us", (int)defaults.SpinAfterBusy.TotalMicroseconds, 0, 10_000)),
                GroupCommitWindow = TimeSpan.FromMicroseconds(settings.Int("group_us", (int)defaults.GroupCommitWindow.TotalMicroseconds, 0, 10_000)),
            },
        };
    }

    /// <summary>The disk server's name in listings and the controller's inventory.</summary>
    public string Name { get; init; } = Environment.MachineName;

    /// <summary>The AoE shelf it registers with; null lets the controller choose (see <see cref="RegisterDiskServerRequest.Shelf"/>).</summary>
    public ushort? Shelf { get; init; }

    /// <summary>Where it registers itself at start; null: nowhere (a disk server registered by hand, or none).</summary>
    public ControllerRegistration? Registration { get; init; }

    /// <summary>Directory of the storage pool (created if missing).</summary>
    public required string PoolDirectory { get; init; }

    /// <summary>Storage NICs to serve on; a target answers on every one (that is how initiators find several paths).</summary>
    public required IReadOnlyList<string> Interfaces { get; init; }

    /// <summary>Unix socket of the local management API; defaults to <c>disk.sock</c> in the pool.</summary>
    public string? ApiSocket { get; init; }

    /// <summary>TCP address:port for the API on the management network (the controller fences through it); null: unix socket only.</summary>
    public System.Net.IPEndPoint? Listen { get; init; }

    /// <summary>The cluster's API token, required of every request to <see cref="Listen"/> (the unix socket needs none).</summary>
    public string? Token { get; init; }

    public TargetOptions Target { get; init; } = new();

    public void Validate()
    {
        if (Interfaces.Count == 0)
            throw new ArgumentException("name at least one storage interface (--interface)");
        if (Listen is not null && Token is null)
            throw new ArgumentException("--listen needs --token-file: the API creates, deletes and fences volumes, so it is never open on the network without a token");
        if (Target.WorkersPerInterface is < 1 or > 64)
            throw new ArgumentException("workers per interface must be 1..64");
        if (Target.BatchSize is < 1 or > 1024)
            throw new ArgumentException("batch size must be 1..1024");
        if (Target.SpinAfterBusy < TimeSpan.Zero || Target.SpinAfterBusy > TimeSpan.FromMilliseconds(10))
            throw new ArgumentException("spin must be 0..10000 microseconds");
        if (Target.GroupCommitWindow < TimeSpan.Zero || Target.GroupCommitWindow > TimeSpan.FromMilliseconds(10))
            throw new ArgumentException("the group commit window must be 0..10000 microseconds");
        if (Target.BufferCount < 1)
            throw new ArgumentException("buffer count must be at least 1");
    }
}
