using System.Globalization;

namespace XenAoe.Cli;

/// <summary>Durations as people type them: 90s, 30m, 1h, 2d (a bare number is seconds).</summary>
internal static class Durations
{
    public static TimeSpan Parse(string text)
    {
        var t = text.Trim();
        var unit = t.Length > 0 && char.IsLetter(t[^1]) ? t[^1] : 's';
        var digits = char.IsLetter(t.LastOrDefault()) ? t[..^1] : t;
        if (!double.TryParse(digits, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value))
            throw new ArgumentException($"'{text}' is not a duration (examples: 90s, 30m, 1h, 2d)");
        return unit switch
        {
            's' => TimeSpan.FromSeconds(value),
            'm' => TimeSpan.FromMinutes(value),
            'h' => TimeSpan.FromHours(value),
            'd' => TimeSpan.FromDays(value),
            _ => throw new ArgumentException($"'{text}': unknown unit '{unit}' (use s, m, h or d)"),
        };
    }
}
