namespace XenAoe.Control.Scheduling;

public static partial class Scheduler
{
    /// <summary>
    /// Chooses two disk servers for the legs of a mirrored disk of <paramref name="sizeBytes"/>: both up with the space free,
    /// in different failure domains (<see cref="SchedulerOptions.FailureDomainLabels"/>). Preference: the server with the most
    /// free space that has such a partner, then its partner with the most free space (ties by name). When no such pair
    /// exists, the two with the most free space, with <see cref="MirrorLegsPlacement.DomainsSeparated"/> false and the shared
    /// labels named. Does not change <paramref name="cluster"/>.
    /// </summary>
    public static MirrorLegsPlacement PlaceMirrorLegs(
        long sizeBytes, Cluster cluster, IReadOnlyCollection<string>? excludedServers = null)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentOutOfRangeException.ThrowIfNegative(sizeBytes);
        var servers = cluster.DiskServers;
        var (candidates, rejections) = DiskCandidates(cluster, sizeBytes,
            name => excludedServers is not null && excludedServers.Contains(name) ? "excluded by the request" : null);

        if (candidates.Count < 2)
        {
            return new MirrorLegsPlacement(
                null, null, false,
                $"a mirror needs two disk servers with {Bytes(sizeBytes)} free; {candidates.Count} has it", rejections);
        }

        SortByFreeSpace(candidates, cluster);
        var labels = cluster.Options.DomainLabels;
        for (var i = 0; i < candidates.Count; i++)
        {
            for (var j = i + 1; j < candidates.Count; j++)
            {
                var a = servers[candidates[i]];
                var b = servers[candidates[j]];
                if (Separated(a.Labels, b.Labels, labels))
                {
                    return new MirrorLegsPlacement(
                        a.Name, b.Name, true,
                        $"{a.Name} ({Bytes(cluster.DiskFree[candidates[i]])} free) and {b.Name} "
                            + $"({Bytes(cluster.DiskFree[candidates[j]])} free) differ in {string.Join(", ", labels)}",
                        rejections);
                }
            }
        }

        var first = servers[candidates[0]];
        var second = servers[candidates[1]];
        return new MirrorLegsPlacement(
            first.Name, second.Name, false,
            $"no two disk servers with {Bytes(sizeBytes)} free are in different failure domains ({string.Join(", ", labels)}); "
                + $"{first.Name} and {second.Name} are only different servers ({Shared(first.Labels, second.Labels, labels)})",
            rejections);
    }

    /// <summary>
    /// Chooses the disk server for a new leg replacing one of a mirror's two: up with <paramref name="sizeBytes"/> free, not one
    /// of <paramref name="excludedServers"/> (the mirror's current servers, the leaving one and the staying one), and preferably
    /// in a failure domain other than <paramref name="staying"/>'s. Among those, the most free space (ties by name); when none is
    /// separated, the most free space with <see cref="ReplacementLegPlacement.DomainsSeparated"/> false. Does not change
    /// <paramref name="cluster"/>.
    /// </summary>
    public static ReplacementLegPlacement PlaceReplacementLeg(
        long sizeBytes, Cluster cluster, string staying, IReadOnlyCollection<string> excludedServers)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(excludedServers);
        ArgumentOutOfRangeException.ThrowIfNegative(sizeBytes);
        var servers = cluster.DiskServers;
        var (candidates, rejections) = DiskCandidates(cluster, sizeBytes,
            name => name == staying || excludedServers.Contains(name) ? "already holds a leg of this mirror" : null);
        if (candidates.Count == 0)
            return new ReplacementLegPlacement(null, false, $"no other disk server has {Bytes(sizeBytes)} free", rejections);

        SortByFreeSpace(candidates, cluster);
        var labels = cluster.Options.DomainLabels;
        var stayingLabels = Array.Find(servers, s => s.Name == staying)?.Labels;
        foreach (var i in candidates)
        {
            if (Separated(servers[i].Labels, stayingLabels, labels))
            {
                return new ReplacementLegPlacement(servers[i].Name, true,
                    $"{servers[i].Name} ({Bytes(cluster.DiskFree[i])} free) differs from {staying} in {string.Join(", ", labels)}", rejections);
            }
        }
        var best = servers[candidates[0]];
        return new ReplacementLegPlacement(best.Name, false,
            $"no disk server with {Bytes(sizeBytes)} free is in another failure domain than {staying} ({string.Join(", ", labels)}); "
                + $"{best.Name} ({Bytes(cluster.DiskFree[candidates[0]])} free) is only another server ({Shared(best.Labels, stayingLabels, labels)})",
            rejections);
    }

    /// <summary>Orders disk-server indexes by free space, most first; ties by position, so the choice is stable.</summary>
    private static void SortByFreeSpace(List<int> candidates, Cluster cluster) => candidates.Sort((a, b) =>
    {
        var c = cluster.DiskFree[b].CompareTo(cluster.DiskFree[a]);
        return c != 0 ? c : a.CompareTo(b);
    });

    private static string NotUp(ServerState state) => state == ServerState.Down ? "down" : "draining";

    private static string TooSmall(long free, long needed) => $"{Bytes(free)} free, {Bytes(needed)} needed";

    /// <summary>
    /// True when, for every domain label either server carries, both carry it with different values, and at least one label
    /// was compared (servers without labels prove nothing).
    /// </summary>
    internal static bool Separated(
        IReadOnlyDictionary<string, string>? a, IReadOnlyDictionary<string, string>? b, IReadOnlyList<string> keys)
    {
        var compared = false;
        foreach (var key in keys)
        {
            string? va = null;
            string? vb = null;
            var hasA = a is not null && a.TryGetValue(key, out va);
            var hasB = b is not null && b.TryGetValue(key, out vb);
            if (!hasA && !hasB)
                continue;
            if (!hasA || !hasB || string.Equals(va, vb, StringComparison.Ordinal))
                return false;
            compared = true;
        }
        return compared;
    }

    private static string Shared(
        IReadOnlyDictionary<string, string>? a, IReadOnlyDictionary<string, string>? b, IReadOnlyList<string> keys)
    {
        var parts = new List<string>();
        foreach (var key in keys)
        {
            string? va = null;
            string? vb = null;
            var hasA = a is not null && a.TryGetValue(key, out va);
            var hasB = b is not null && b.TryGetValue(key, out vb);
            if (hasA && hasB && string.Equals(va, vb, StringComparison.Ordinal))
                parts.Add($"same {key}={va}");
            else if (hasA != hasB)
                parts.Add($"{key} unknown on one");
        }
        return parts.Count == 0 ? "no failure-domain labels" : string.Join(", ", parts);
    }

    private static string Bytes(long bytes)
        => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):0.#} GiB" : $"{bytes / (double)(1L << 20):0.#} MiB";

    /// <summary>
    /// The disk servers (indexes) that are up, not refused by <paramref name="refuse"/> (a reason, or null) and have
    /// <paramref name="sizeBytes"/> free; every other one with the reason it was passed over.
    /// </summary>
    private static (List<int> Candidates, List<ServerRejection> Rejections) DiskCandidates(Cluster cluster, long sizeBytes, Func<string, string?> refuse)
    {
        var servers = cluster.DiskServers;
        var rejections = new List<ServerRejection>();
        var candidates = new List<int>(servers.Length);
        for (var i = 0; i < servers.Length; i++)
        {
            var name = servers[i].Name;
            var state = cluster.DiskStates[i];
            if (refuse(name) is { } reason)
                rejections.Add(new ServerRejection(name, reason));
            else if (state != ServerState.Up)
                rejections.Add(new ServerRejection(name, NotUp(state)));
            else if (cluster.DiskFree[i] < sizeBytes)
                rejections.Add(new ServerRejection(name, TooSmall(cluster.DiskFree[i], sizeBytes)));
            else
                candidates.Add(i);
        }
        return (candidates, rejections);
    }
}
