namespace XenAoe.Mirror;

public enum LegState
{
    /// <summary>A full, current copy: written and read.</summary>
    InSync,

    /// <summary>Present but behind: written (so it does not fall further behind) and being resynced, never read.</summary>
    Resyncing,

    /// <summary>Gone (I/O failed or absent at assembly): neither written nor read until re-added or replaced.</summary>
    Failed,
}

public enum MirrorHealth
{
    Healthy,
    Resyncing,
    Degraded,
}

public sealed record LegStatus(int Index, string Name, LegState State, ulong Events, ulong Epoch, string? Reason);

public sealed record MirrorStatus(
    Guid MirrorId,
    MirrorHealth Health,
    long Size,
    int RegionSize,
    long DirtyRegions,
    long ResyncDoneBytes,
    long ResyncTotalBytes,
    IReadOnlyList<LegStatus> Legs);

public sealed class MirrorOptions
{
    /// <summary>Bytes of data per bitmap bit when a mirror is created (a power of two, at least 4 KiB). Smaller: less to resync, more bitmap writes.</summary>
    public int RegionSize { get; init; } = 1 << 20;

    /// <summary>How often quiet regions are cleared from the bitmap (a region must be quiet for a whole interval).</summary>
    public TimeSpan CleanInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Resync ceiling in bytes per second, so VM I/O keeps priority. 0: unthrottled.</summary>
    public long ResyncBytesPerSecond { get; init; } = 256L << 20;

    /// <summary>Bytes copied per resync step.</summary>
    public int ResyncChunk { get; init; } = 1 << 20;

    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Receives state changes (leg failed, resync started/finished); never per I/O.</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>The legs cannot form a mirror; the message says why and what to do.</summary>
public sealed class MirrorAssemblyException(string message) : Exception(message);
