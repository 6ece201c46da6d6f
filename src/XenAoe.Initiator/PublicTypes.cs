using XenAoe.Aoe;

namespace XenAoe.Initiator;

/// <summary>A target as discovery saw it.</summary>
/// <param name="BufferCount">Frames the target says it queues (from its config reply).</param>
/// <param name="ConfigString">The config string in the most recent reply.</param>
/// <param name="Paths">Every (local NIC, target MAC) pair a config reply arrived on.</param>
public sealed record AoeTargetInfo(AoeAddress Address, ushort BufferCount, ushort FirmwareVersion, byte[] ConfigString, IReadOnlyList<AoeTargetPath> Paths);

/// <param name="Interface">Local NIC name.</param>
/// <param name="TargetSectors">Sectors per frame the target offers on its NIC (its config reply).</param>
/// <param name="SectorsPerFrame">What this initiator sends on the path: the smaller of that and what the local MTU carries.</param>
public sealed record AoeTargetPath(string Interface, MacAddress LocalMac, MacAddress TargetMac, int TargetSectors, int SectorsPerFrame);

public enum AoePathState
{
    /// <summary>Answering; carries I/O.</summary>
    Up,

    /// <summary>A frame timed out since its last answer: used only when no up path has room, and probed.</summary>
    Suspect,

    /// <summary>No answer for PathTimeout: carries nothing, probed every ProbeInterval until it answers.</summary>
    Down,
}

/// <summary>A snapshot of one path of a device.</summary>
/// <param name="Mtu">
/// Smallest MTU known on the path: the local NIC's, lowered to what the target's sector count implies
/// (22 + 512 × sectors) when that is smaller. Switches between are not measured.
/// </param>
/// <param name="SectorsPerFrame">min(target's sector count, (local MTU − 22) / 512).</param>
/// <param name="Window">Congestion window in frames (fractional in congestion avoidance).</param>
/// <param name="MaxWindow">min(MaxWindow option, target's buffer count).</param>
/// <param name="SmoothedRtt">Smoothed round trip of reads (srtt); RttVariance and RetransmitTimeout are the read estimator's too.</param>
/// <param name="WriteSmoothedRtt">Smoothed round trip of writes, estimated apart (a write-through target answers after its disk).</param>
/// <param name="SinceLastAnswer">Time since the path last carried a reply; null if never.</param>
public sealed record AoePathInfo(
    string Interface,
    MacAddress LocalMac,
    MacAddress TargetMac,
    AoePathState State,
    int Mtu,
    int LocalMtu,
    int SectorsPerFrame,
    double Window,
    int MaxWindow,
    int Outstanding,
    TimeSpan SmoothedRtt,
    TimeSpan RttVariance,
    TimeSpan RetransmitTimeout,
    TimeSpan WriteSmoothedRtt,
    TimeSpan WriteRetransmitTimeout,
    long FramesSent,
    long Retransmissions,
    long Timeouts,
    TimeSpan? SinceLastAnswer);

/// <summary>Counters of a device since it was opened.</summary>
/// <param name="StaleReplies">Replies for frames already answered or given up (duplicates after a retransmission), or too short.</param>
/// <param name="ErrorReplies">Replies with the AoE Error flag or ATA ERR status.</param>
public sealed record AoeDeviceStatistics(
    long ReadRequests,
    long WriteRequests,
    long FlushRequests,
    long FailedRequests,
    long SectorsRead,
    long SectorsWritten,
    long FramesSent,
    long Retransmissions,
    long Timeouts,
    long Replies,
    long StaleReplies,
    long ErrorReplies);

/// <summary>One directive of a MAC mask edit.</summary>
public readonly record struct AoeMacMaskEdit(MacMaskDirective Directive, MacAddress Mac)
{
    public static AoeMacMaskEdit Add(MacAddress mac) => new(MacMaskDirective.Add, mac);

    public static AoeMacMaskEdit Delete(MacAddress mac) => new(MacMaskDirective.Delete, mac);
}

/// <summary>
/// A target refused a control command (config string, MAC mask, reservation) with an AoE error or a MAC mask error.
/// Block I/O failures are <see cref="Block.BlockDeviceException"/> instead.
/// </summary>
public sealed class AoeCommandException(AoeAddress target, AoeError error, MacMaskError maskError, string message) : IOException(message)
{
    public AoeAddress Target { get; } = target;

    /// <summary>The AoE error code; None when the refusal is a MAC mask error.</summary>
    public AoeError Error { get; } = error;

    public MacMaskError MaskError { get; } = maskError;
}
