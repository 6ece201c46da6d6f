using System.Globalization;

namespace XenAoe.IntegrationTests.Infrastructure;

/// <summary>One line of a guest's serial console.</summary>
/// <param name="Index">Position in the transcript, from 0.</param>
/// <param name="Text">The line, without line ending or terminal control sequences before a <c>XENAOE-</c> tag.</param>
/// <param name="At">When the host read it, measured from QEMU's start.</param>
public sealed record GuestLine(int Index, string Text, TimeSpan At)
{
    /// <summary>The value of a <c>key=value</c> word on the line, or <see langword="null"/>.</summary>
    public string? Value(string key)
    {
        foreach (var word in Text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (word.Length > key.Length && word[key.Length] == '=' && word.StartsWith(key, StringComparison.Ordinal))
                return word[(key.Length + 1)..];
        }
        return null;
    }

    /// <summary>The integer value of a <c>key=value</c> word; throws if it is missing.</summary>
    public long Number(string key) =>
        Value(key) is { } text && long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var number)
            ? number
            : throw new FormatException($"Guest line '{Text}' has no integer '{key}=' value.");

    public override string ToString() => FormattableString.Invariant($"[{At.TotalSeconds,7:F2}s] {Text}");
}
