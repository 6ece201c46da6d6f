namespace XenAoe.Control.Store;

/// <summary>
/// The controller's desired state: a versioned key-value store of JSON documents under hierarchical keys
/// (<c>vms/vm1</c>, <c>jobs/000123</c>). Every write gets a revision from one counter per store that only grows; a key's
/// <see cref="StoreEntry.Revision"/> is the revision of its last write. Writers that must not overwrite each other pass the
/// revision they read as <c>expectedRevision</c> and re-read and retry on <see cref="StoreConflictException"/>.
/// Implementations are safe to use from several threads at once.
/// </summary>
public interface IStateStore : IAsyncDisposable
{
    /// <summary>The entry under <paramref name="key"/>, or null when there is none.</summary>
    Task<StoreEntry?> GetAsync(string key, CancellationToken ct = default);

    /// <summary>Every entry whose key starts with <paramref name="prefix"/> (empty: all), sorted by key (ordinal, UTF-8 bytes).</summary>
    Task<IReadOnlyList<StoreEntry>> ListAsync(string prefix, CancellationToken ct = default);

    /// <summary>
    /// Writes <paramref name="value"/> (at most <see cref="StoreKeys.MaxValueBytes"/>) under <paramref name="key"/> and returns
    /// the new revision. <paramref name="expectedRevision"/>: null writes unconditionally; 0 requires that the key does not
    /// exist; any other value requires that the key's revision is exactly that.
    /// </summary>
    /// <exception cref="StoreConflictException">The compare failed; nothing was written.</exception>
    Task<long> PutAsync(string key, ReadOnlyMemory<byte> value, long? expectedRevision = null, CancellationToken ct = default);

    /// <summary>
    /// Deletes <paramref name="key"/>; true when it existed. With <paramref name="expectedRevision"/> the key must exist with
    /// exactly that revision (0 is refused: there is nothing to delete).
    /// </summary>
    /// <exception cref="StoreConflictException">The compare failed; nothing was deleted.</exception>
    Task<bool> DeleteAsync(string key, long? expectedRevision = null, CancellationToken ct = default);

    /// <summary>
    /// Applies every operation atomically: all compares hold and every put and delete is applied at one revision, or a
    /// <see cref="StoreConflictException"/> naming the failed compares is thrown and nothing is applied. Returns the store's
    /// revision after the transaction. A key may appear in at most one operation.
    /// </summary>
    Task<long> TransactAsync(IReadOnlyList<StoreOperation> operations, CancellationToken ct = default);

    /// <summary>
    /// The changes to keys under <paramref name="prefix"/> in revision order, starting at <paramref name="fromRevision"/>
    /// (inclusive; 0: changes after the call), until <paramref name="ct"/> is cancelled. Changes of one transaction share a
    /// revision and arrive in operation order.
    /// </summary>
    IAsyncEnumerable<StoreEvent> WatchAsync(string prefix, long fromRevision = 0, CancellationToken ct = default);
}
