using System.Globalization;

namespace XenAoe.Cli;

/// <summary>Byte sizes as people type them: 512, 64M, 1GiB, 2T (binary units; a bare number is bytes).</summary>
internal static class Sizes
{
    public static long Parse(string text)
    {
        var t = text.Trim();
        var unit = t.TrimStart("0123456789".ToCharArray()) is var suffix && suffix.Length > 0 ? suffix : "";
        var digits = t[..^unit.Length];
        if (digits.Length == 0 || !long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
            throw new ArgumentException($"'{text}' is not a size (examples: 512, 64M, 1GiB)");
        var shift = unit.ToUpperInvariant() switch
        {
            "" or "B" => 0,
            "K" or "KB" or "KIB" => 10,
            "M" or "MB" or "MIB" => 20,
            "G" or "GB" or "GIB" => 30,
            "T" or "TB" or "TIB" => 40,
            _ => throw new ArgumentException($"'{text}': unknown unit '{unit}' (use K, M, G or T)"),
        };
        if (value > long.MaxValue >> shift)
            throw new ArgumentException($"'{text}' is too large");
        return value << shift;
    }

    public static string Format(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        var value = (double)bytes;
        var unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0 ? $"{bytes} B" : string.Create(CultureInfo.InvariantCulture, $"{value:0.##} {units[unit]}");
    }
}
