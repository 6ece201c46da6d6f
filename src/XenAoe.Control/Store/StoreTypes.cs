using System.Text;

namespace XenAoe.Control.Store;

/// <summary>One key's current value and the revision of its last write.</summary>
public sealed record StoreEntry(string Key, ReadOnlyMemory<byte> Value, long Revision)
{
    /// <summary>The value decoded as UTF-8 (documents are JSON).</summary>
    public string ValueText => Encoding.UTF8.GetString(Value.Span);
}

public enum StoreEventKind
{
    Put,
    Delete,
}

/// <summary>A change seen by <see cref="IStateStore.WatchAsync"/>; a delete has an empty value.</summary>
public sealed record StoreEvent(StoreEventKind Kind, string Key, ReadOnlyMemory<byte> Value, long Revision)
{
    public string ValueText => Encoding.UTF8.GetString(Value.Span);
}

public enum StoreOperationKind
{
    /// <summary>Only compares: the transaction applies only if the key's revision is <see cref="StoreOperation.ExpectedRevision"/>.</summary>
    Check,
    Put,
    Delete,
}

/// <summary>
/// One step of <see cref="IStateStore.TransactAsync"/>: a put, a delete or a bare check, each with an optional compare
/// (<see cref="ExpectedRevision"/>: null none, 0 "must not exist", else "revision is exactly this").
/// </summary>
public sealed record StoreOperation
{
    private StoreOperation(StoreOperationKind kind, string key, ReadOnlyMemory<byte> value, long? expectedRevision)
    {
        StoreKeys.ValidateKey(key);
        StoreKeys.ValidateValue(key, value.Length);
        StoreKeys.ValidateExpected(expectedRevision);
        Kind = kind;
        Key = key;
        Value = value;
        ExpectedRevision = expectedRevision;
    }

    public StoreOperationKind Kind { get; }
    public string Key { get; }
    public ReadOnlyMemory<byte> Value { get; }
    public long? ExpectedRevision { get; }

    public static StoreOperation Put(string key, ReadOnlyMemory<byte> value, long? expectedRevision = null) =>
        new(StoreOperationKind.Put, key, value, expectedRevision);

    public static StoreOperation Put(string key, string value, long? expectedRevision = null) =>
        Put(key, Encoding.UTF8.GetBytes(value), expectedRevision);

    public static StoreOperation Delete(string key, long? expectedRevision = null) =>
        new(StoreOperationKind.Delete, key, ReadOnlyMemory<byte>.Empty, expectedRevision);

    public static StoreOperation Check(string key, long expectedRevision) =>
        new(StoreOperationKind.Check, key, ReadOnlyMemory<byte>.Empty, expectedRevision);
}

/// <summary>A compare-and-swap failed: another writer changed the key(s) first. Re-read and retry.</summary>
public sealed class StoreConflictException(IReadOnlyList<string> keys, string message) : Exception(message)
{
    /// <summary>The keys whose compare failed (as far as the backend reports them; etcd reports none: all compared keys).</summary>
    public IReadOnlyList<string> Keys { get; } = keys;
}

/// <summary>The store could not be reached or answered with an error (every etcd member tried, a broken database file).</summary>
public sealed class StoreUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>String conveniences over the byte API; documents are UTF-8 JSON.</summary>
public static class StateStoreExtensions
{
    public static Task<long> PutAsync(this IStateStore store, string key, string value, long? expectedRevision = null, CancellationToken ct = default) =>
        store.PutAsync(key, Encoding.UTF8.GetBytes(value), expectedRevision, ct);
}
