using XenAoe.Agents;

namespace XenAoe.Cli;

/// <summary>A plain-text table with columns sized to their widest cell.</summary>
internal static class Table
{
    public static void Write(TextWriter output, IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string>> rows)
    {
        var all = rows.ToList();
        var widths = headers.Select((h, i) => all.Select(r => r[i].Length).Append(h.Length).Max()).ToArray();
        output.WriteLine(Line(headers, widths));
        foreach (var row in all)
            output.WriteLine(Line(row, widths));
    }

    /// <summary>Storage NICs as <c>eth1/9000 eth2/9000</c> (name/MTU).</summary>
    public static string Nics(IReadOnlyList<StorageNic> nics) => nics.Count == 0 ? "-" : string.Join(' ', nics.Select(n => $"{n.Name}/{n.Mtu}"));

    public static string Labels(IReadOnlyDictionary<string, string> labels) =>
        labels.Count == 0 ? "-" : string.Join(' ', labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}={l.Value}"));

    private static string Line(IReadOnlyList<string> cells, int[] widths) =>
        string.Join("  ", cells.Select((c, i) => i == cells.Count - 1 ? c : c.PadRight(widths[i]))).TrimEnd();
}
