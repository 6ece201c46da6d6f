using XenAoe.Target;

namespace XenAoe.Agents.Disk;

public sealed class DiskServerOptions
{
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
        if (Target.BufferCount < 1)
            throw new ArgumentException("buffer count must be at least 1");
    }
}
