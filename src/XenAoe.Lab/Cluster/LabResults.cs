using System.Text.Json.Serialization;

namespace XenAoe.Lab.Cluster;

/// <summary>One step of a lab command: <paramref name="Step"/> of <paramref name="Total"/> (1-based) is starting.</summary>
public readonly record struct LabProgress(int Step, int Total, string Message);

/// <summary>A lab command could not do what was asked; the message says why and what to do.</summary>
public sealed class LabException : Exception
{
    public LabException(string message)
        : base(message)
    {
    }

    public LabException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>What exists of the lab: recorded or found by name. <see cref="Exists"/> is false on a machine with no lab.</summary>
public sealed record LabStatus(
    string StateDirectory,
    string Prefix,
    bool Recorded,
    string? Phase,
    IReadOnlyList<LabNamespaceStatus> Namespaces,
    IReadOnlyList<LabTapStatus> Taps,
    IReadOnlyList<LabProcessStatus> Processes)
{
    public bool Exists => Recorded || Namespaces.Any(n => n.Exists);
}

/// <summary>A namespace of the lab; <see cref="Recorded"/> false means it was found by name only (state missing it).</summary>
public sealed record LabNamespaceStatus(string Name, bool Recorded, bool Exists, IReadOnlyList<LabLinkStatus> Links);

/// <summary>
/// A network interface: <see cref="Up"/> is the administrative state (IFF_UP), <see cref="OperState"/> the kernel's
/// ("UP", "DOWN", "LOWERLAYERDOWN", "UNKNOWN" for loopback and unconnected TAPs). Addresses are "10.77.0.11/24".
/// </summary>
public sealed record LabLinkStatus(string Name, string? Kind, bool Up, string OperState, int Mtu, string? Master, IReadOnlyList<string> Addresses);

public sealed record LabTapStatus(string Namespace, string Name, bool Exists);

/// <summary>A recorded daemon; <see cref="Alive"/> is true only when its pid still names the process that was started.</summary>
public sealed record LabProcessStatus(string Name, string Namespace, int? Pid, bool Alive, string LogFile, string CommandLine);

/// <summary>What <c>down</c> did. <see cref="Problems"/> empty means everything is gone (the state too).</summary>
public sealed record LabDownReport(bool LabFound, IReadOnlyList<string> Removed, IReadOnlyList<string> Problems)
{
    public bool Succeeded => Problems.Count == 0;
}

/// <summary>
/// One storage path: <paramref name="From"/> pinged <paramref name="To"/> across <paramref name="Switch"/> with
/// don't-fragment packets of the full MTU. When it failed, <paramref name="LargestMtu"/> is the largest MTU the path carries
/// (found by probing; null when even the smallest probe failed).
/// </summary>
public sealed record JumboFramePath(string Switch, string From, string To, bool Passed, int? LargestMtu, string? Detail);

/// <summary>The jumbo-frame check of every pair of servers on every storage switch.</summary>
public sealed record JumboFrameReport(int Mtu, IReadOnlyList<JumboFramePath> Paths)
{
    public bool Passed => Paths.All(p => p.Passed);

    public IEnumerable<JumboFramePath> Failures => Paths.Where(p => !p.Passed);

    public override string ToString() => Passed
        ? $"Every storage path carries {Mtu}-byte frames ({Paths.Count} paths checked)."
        : string.Join('\n', Failures.Select(f =>
            $"{f.Switch}: {f.From} -> {f.To} cannot carry {Mtu}-byte frames; largest MTU {(f.LargestMtu is { } m ? m.ToString(System.Globalization.CultureInfo.InvariantCulture) : "unknown")}{(f.Detail is null ? "" : $" ({f.Detail})")}"));
}

/// <summary>JSON for the CLI's --json output of lab results.</summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(LabStatus))]
[JsonSerializable(typeof(LabDownReport))]
[JsonSerializable(typeof(JumboFrameReport))]
public sealed partial class LabJsonContext : JsonSerializerContext;
