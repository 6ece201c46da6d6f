using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Text;

namespace XenAoe.Control.Store;

/// <summary>The limits every backend enforces before anything reaches the store.</summary>
public static class StoreKeys
{
    /// <summary>Longest key, in UTF-8 bytes.</summary>
    public const int MaxKeyBytes = 1024;

    /// <summary>Largest value: 1 MiB, below etcd's default 1.5 MiB request limit once base64 and JSON are added.</summary>
    public const int MaxValueBytes = 1024 * 1024;

    /// <summary>Refuses empty keys, keys over <see cref="MaxKeyBytes"/>, control characters and broken UTF-16.</summary>
    public static void ValidateKey(string key, [CallerArgumentExpression(nameof(key))] string? name = null) =>
        Validate(key, allowEmpty: false, name ?? "key");

    /// <summary>As <see cref="ValidateKey"/>, but the empty prefix (everything) is allowed.</summary>
    public static void ValidatePrefix(string prefix, [CallerArgumentExpression(nameof(prefix))] string? name = null) =>
        Validate(prefix, allowEmpty: true, name ?? "prefix");

    public static void ValidateValue(string key, int length)
    {
        if (length > MaxValueBytes)
            ThrowValueTooLarge(key, length);
    }

    public static void ValidateExpected(long? expectedRevision)
    {
        if (expectedRevision < 0)
            throw new ArgumentOutOfRangeException(nameof(expectedRevision), expectedRevision, "An expected revision is 0 (must not exist) or a revision the store returned (> 0).");
    }

    private static void Validate(string key, bool allowEmpty, string name)
    {
        ArgumentNullException.ThrowIfNull(key, name);
        if (key.Length == 0)
        {
            if (allowEmpty)
                return;
            throw new ArgumentException("A store key must not be empty.", name);
        }
        for (var i = 0; i < key.Length; i++)
        {
            var c = key[i];
            if (char.IsControl(c))
                throw new ArgumentException($"A store key must not contain control characters; U+{(int)c:X4} at index {i}.", name);
            if (char.IsSurrogate(c))
            {
                if (!char.IsHighSurrogate(c) || i + 1 >= key.Length || !char.IsLowSurrogate(key[i + 1]))
                    throw new ArgumentException($"A store key must be well-formed Unicode; a lone surrogate at index {i}.", name);
                i++;
            }
        }
        var bytes = Encoding.UTF8.GetByteCount(key);
        if (bytes > MaxKeyBytes)
            throw new ArgumentException($"A store key must be at most {MaxKeyBytes} bytes of UTF-8; this one is {bytes}.", name);
    }

    [DoesNotReturn]
    private static void ThrowValueTooLarge(string key, int length) =>
        throw new ArgumentException($"The value for '{key}' is {length} bytes; a store value is at most {MaxValueBytes} bytes (1 MiB).", "value");
}
