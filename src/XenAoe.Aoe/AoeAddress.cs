using System.Globalization;

namespace XenAoe.Aoe;

/// <summary>A target's shelf.slot, written e1.0 as the Linux driver names devices.</summary>
public readonly record struct AoeAddress(ushort Shelf, byte Slot)
{
    public bool IsBroadcast => Shelf == AoeProtocol.BroadcastShelf || Slot == AoeProtocol.BroadcastSlot;

    /// <summary>Parses "e1.0" or "1.0".</summary>
    public static bool TryParse(string? text, out AoeAddress address)
    {
        address = default;
        if (string.IsNullOrEmpty(text))
            return false;
        var t = text.StartsWith('e') ? text[1..] : text;
        var dot = t.IndexOf('.');
        if (dot < 0
            || !ushort.TryParse(t.AsSpan(0, dot), NumberStyles.None, CultureInfo.InvariantCulture, out var shelf)
            || !byte.TryParse(t.AsSpan(dot + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var slot))
            return false;
        address = new AoeAddress(shelf, slot);
        return true;
    }

    public static AoeAddress Parse(string text) =>
        TryParse(text, out var a) ? a : throw new FormatException($"'{text}' is not an AoE address (expected shelf.slot such as e1.0)");

    public override string ToString() => $"e{Shelf}.{Slot}";
}
