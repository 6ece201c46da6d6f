using XenAoe.Aoe;
using XenAoe.Storage;

namespace XenAoe.Agents.Disk;

/// <summary>
/// Volume administration of one disk server. <see cref="DiskAdministrator"/> does it in-process (the daemon, or the CLI when no
/// daemon holds the pool); <see cref="DiskApiClient"/> asks a running daemon. Refusals are <see cref="StorageException"/>s with a reason.
/// </summary>
public interface IDiskVolumes
{
    Task<IReadOnlyList<VolumeSpec>> ListAsync(CancellationToken ct = default);
    Task<VolumeSpec> CreateAsync(VolumeSpec spec, CancellationToken ct = default);
    Task<VolumeSpec> ResizeAsync(string name, long sizeBytes, bool allowShrink, CancellationToken ct = default);

    /// <summary>Deletes a volume; a reserved volume (some host's disk) needs <paramref name="force"/>.</summary>
    Task DeleteAsync(string name, bool force, CancellationToken ct = default);

    /// <summary>Force-sets the AoE reservation (empty releases it): how the controller fences a host at the storage.</summary>
    Task<VolumeSpec> SetReservationAsync(string name, IReadOnlyList<MacAddress> holders, CancellationToken ct = default);

    /// <summary>Replaces the MAC mask (empty admits everyone).</summary>
    Task<VolumeSpec> SetMacMaskAsync(string name, IReadOnlyList<MacAddress> macs, CancellationToken ct = default);

    Task<VolumeSpec> SetConfigStringAsync(string name, string value, CancellationToken ct = default);

    /// <summary>The pool's space: what new volumes can still take.</summary>
    Task<PoolSpace> SpaceAsync(CancellationToken ct = default);

    /// <summary>Target counters by name; empty when the volumes are not being served.</summary>
    Task<IReadOnlyDictionary<string, long>> CountersAsync(CancellationToken ct = default);
}

/// <param name="FreeBytes">Bytes the pool's file system can still give (volume files are sparse: this, not the sum of their sizes, is the limit).</param>
/// <param name="ProvisionedBytes">The sum of the volumes' sizes.</param>
public sealed record PoolSpace(string Directory, long FreeBytes, long TotalBytes, long ProvisionedBytes);
