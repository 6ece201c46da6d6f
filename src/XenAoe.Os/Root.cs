namespace XenAoe.Os;

/// <summary>Whether this process can build network namespaces: euid 0 and a working `ip netns`.</summary>
public static class Root
{
    private static readonly Lazy<string?> s_unavailableReason = new(Probe);

    /// <summary>True when running as root with `ip netns` usable.</summary>
    public static bool Available => s_unavailableReason.Value is null;

    /// <summary>Why <see cref="Available"/> is false; null when it is true.</summary>
    public static string? UnavailableReason => s_unavailableReason.Value;

    /// <summary>
    /// Throws a clear message naming <paramref name="what"/> when namespaces cannot be built here. Integration tests fail
    /// rather than pass silently (CI runs as root).
    /// </summary>
    public static void Require(string what = "This integration test")
    {
        if (s_unavailableReason.Value is { } reason)
            throw new InvalidOperationException($"{what} needs root and network namespaces: {reason}. Run it as root.");
    }

    private static string? Probe()
    {
        if (!Environment.IsPrivilegedProcess)
            return $"effective uid is {Interop.GetEffectiveUserId()}, not 0";
        try
        {
            var result = Command.RunAsync("ip", ["netns", "list"], TimeSpan.FromSeconds(10)).GetAwaiter().GetResult();
            return result.ExitCode == 0 ? null : $"`ip netns list` failed: {result.StdErr.Trim()}";
        }
        catch (Exception e)
        {
            return $"`ip netns list` could not run: {e.Message}";
        }
    }
}
