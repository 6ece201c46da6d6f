namespace XenAoe.Agents.Disk;

/// <summary>
/// What the controller asks of a disk server's daemon: its identity, volumes, reservations and space. <see cref="DiskApiClient"/> asks a
/// real daemon over HTTP; tests use an in-memory fake that fails on cue.
/// </summary>
public interface IDiskAgent : IDiskVolumes
{
    /// <summary>Where the daemon is reached: a URL or a unix socket path.</summary>
    string Endpoint { get; }

    /// <summary>Its name, storage NICs and pool space (registration reads them).</summary>
    Task<DiskInfo> InfoAsync(CancellationToken ct = default);
}
