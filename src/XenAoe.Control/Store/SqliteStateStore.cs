using System.Runtime.CompilerServices;
using Microsoft.Data.Sqlite;

namespace XenAoe.Control.Store;

/// <summary>
/// <see cref="IStateStore"/> in one SQLite file (WAL mode): the default for a single controller, nothing to set up.
/// A global revision counter in table <c>meta</c>; every write is one <c>BEGIN IMMEDIATE</c> transaction that checks its
/// compares, applies its changes, logs them in <c>changes</c> (what <see cref="WatchAsync"/> reads) and bumps the counter.
/// Watchers in this process are woken by each commit; a slow poll catches writes by other processes sharing the file. The
/// change log keeps the last <see cref="ChangeLogRevisions"/> revisions (older ones are compacted away, as etcd compacts).
/// Each call opens a pooled connection, so threads (and processes sharing the file) serialise on SQLite's write lock.
/// </summary>
public sealed class SqliteStateStore : IStateStore
{
    private readonly string _connectionString;
    private readonly TimeProvider _time;
    private TaskCompletionSource _committed = NewCommitSignal();
    private int _disposed;

    /// <summary>Opens (creating when absent) the database at <paramref name="path"/>; its directory must exist.</summary>
    /// <param name="watchPollInterval">How often a watch looks for writes by other processes; default 1 s (this process's wake it at once).</param>
    /// <param name="changeLogRevisions">How many revisions of changes a watch can start from; default 10,000.</param>
    public SqliteStateStore(string path, TimeSpan? watchPollInterval = null, TimeProvider? time = null, int changeLogRevisions = 10_000)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentOutOfRangeException.ThrowIfLessThan(changeLogRevisions, 1);
        Path = System.IO.Path.GetFullPath(path);
        WatchPollInterval = watchPollInterval ?? TimeSpan.FromSeconds(1);
        ChangeLogRevisions = changeLogRevisions;
        _time = time ?? TimeProvider.System;
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = Path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            // Seconds a statement retries while another connection holds the write lock.
            DefaultTimeout = 30,
        }.ToString();
        using var connection = Open();
        Execute(connection, """
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY, value BLOB NOT NULL, revision INTEGER NOT NULL) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
            INSERT OR IGNORE INTO meta(name, value) VALUES ('revision', 0);
            INSERT OR IGNORE INTO meta(name, value) VALUES ('compacted', 0);
            CREATE TABLE IF NOT EXISTS changes(id INTEGER PRIMARY KEY AUTOINCREMENT, revision INTEGER NOT NULL, key TEXT NOT NULL, deleted INTEGER NOT NULL, value BLOB);
            CREATE INDEX IF NOT EXISTS changes_revision ON changes(revision);
            """);
    }

    /// <summary>The database file (absolute).</summary>
    public string Path { get; }

    public TimeSpan WatchPollInterval { get; }

    public int ChangeLogRevisions { get; }

    public Task<StoreEntry?> GetAsync(string key, CancellationToken ct = default)
    {
        StoreKeys.ValidateKey(key);
        ct.ThrowIfCancellationRequested();
        using var connection = Open();
        return Task.FromResult(Read(connection, null, key));
    }

    public Task<IReadOnlyList<StoreEntry>> ListAsync(string prefix, CancellationToken ct = default)
    {
        StoreKeys.ValidatePrefix(prefix);
        ct.ThrowIfCancellationRequested();
        using var connection = Open();
        using var command = connection.CreateCommand();
        // substr/length count characters on both sides, so the prefix test is exact; BINARY collation orders by UTF-8 bytes as etcd
        // does. The range on the key lets SQLite read only the prefix's stretch of the primary key, not the whole table.
        var end = RangeEnd(prefix);
        command.CommandText = $"SELECT key, value, revision FROM kv WHERE key >= $p {(end is null ? "" : "AND key < $end ")}AND substr(key, 1, length($p)) = $p ORDER BY key";
        command.Parameters.AddWithValue("$p", prefix);
        if (end is not null)
            command.Parameters.AddWithValue("$end", end);
        var list = new List<StoreEntry>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
            list.Add(new StoreEntry(reader.GetString(0), (byte[])reader[1], reader.GetInt64(2)));
        return Task.FromResult<IReadOnlyList<StoreEntry>>(list);
    }

    public async Task<long> PutAsync(string key, ReadOnlyMemory<byte> value, long? expectedRevision = null, CancellationToken ct = default) =>
        await TransactAsync([StoreOperation.Put(key, value, expectedRevision)], ct).ConfigureAwait(false);

    public Task<bool> DeleteAsync(string key, long? expectedRevision = null, CancellationToken ct = default)
    {
        if (expectedRevision == 0)
            throw new ArgumentOutOfRangeException(nameof(expectedRevision), "Deleting a key that must not exist deletes nothing; pass null or the key's revision.");
        var operation = StoreOperation.Delete(key, expectedRevision);
        ct.ThrowIfCancellationRequested();
        return Task.FromResult(Apply([operation]).Changed > 0);
    }

    public Task<long> TransactAsync(IReadOnlyList<StoreOperation> operations, CancellationToken ct = default)
    {
        CheckOperations(operations);
        ct.ThrowIfCancellationRequested();
        return Task.FromResult(Apply(operations).Revision);
    }

    public async IAsyncEnumerable<StoreEvent> WatchAsync(string prefix, long fromRevision = 0, [EnumeratorCancellation] CancellationToken ct = default)
    {
        StoreKeys.ValidatePrefix(prefix);
        ArgumentOutOfRangeException.ThrowIfNegative(fromRevision);
        long after;
        using (var connection = Open())
            after = fromRevision > 0 ? fromRevision - 1 : CurrentRevision(connection, null);
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            // Taken before the read, so a commit between the read and the wait still wakes it.
            var committed = Volatile.Read(ref _committed).Task;
            var batch = new List<StoreEvent>();
            using (var connection = Open())
            using (var command = connection.CreateCommand())
            {
                var compacted = Meta(connection, "compacted");
                if (after < compacted)
                    throw new StoreUnavailableException($"the change log is compacted up to revision {compacted}; a watch from {after + 1} cannot continue. Re-list and watch from the listed revision.");
                // Changes of one revision commit together, so "revision > after" never splits a transaction.
                command.CommandText = "SELECT revision, key, deleted, value FROM changes WHERE revision > $after AND substr(key, 1, length($p)) = $p ORDER BY id";
                command.Parameters.AddWithValue("$after", after);
                command.Parameters.AddWithValue("$p", prefix);
                using var reader = command.ExecuteReader();
                while (reader.Read())
                {
                    var deleted = reader.GetInt64(2) != 0;
                    batch.Add(new StoreEvent(deleted ? StoreEventKind.Delete : StoreEventKind.Put, reader.GetString(1),
                        deleted || reader.IsDBNull(3) ? ReadOnlyMemory<byte>.Empty : (byte[])reader[3], reader.GetInt64(0)));
                }
                if (batch.Count > 0)
                    after = batch[^1].Revision;
            }
            foreach (var e in batch)
                yield return e;
            if (batch.Count > 0)
                continue;
            try
            {
                await committed.WaitAsync(WatchPollInterval, _time, ct).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // No commit here: look for another process's.
            }
        }
    }

    /// <summary>Leadership through an exclusive lock on <c>PATH.leader</c>: one controller per database file.</summary>
    public FileLockLeaderElection CreateLeaderElection(TimeSpan? pollInterval = null) =>
        new(Path + ".leader", pollInterval, _time);

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            // Pooled connections keep the file open (and its WAL); clearing the pool closes them so the file can be moved or deleted.
            using var connection = new SqliteConnection(_connectionString);
            SqliteConnection.ClearPool(connection);
        }
        return ValueTask.CompletedTask;
    }

    internal static void CheckOperations(IReadOnlyList<StoreOperation> operations)
    {
        ArgumentNullException.ThrowIfNull(operations);
        if (operations.Count == 0)
            throw new ArgumentException("A transaction needs at least one operation.", nameof(operations));
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var op in operations)
        {
            ArgumentNullException.ThrowIfNull(op, nameof(operations));
            if (!keys.Add(op.Key))
                throw new ArgumentException($"The key '{op.Key}' appears in more than one operation of the transaction.", nameof(operations));
            if (op.Kind == StoreOperationKind.Delete && op.ExpectedRevision == 0)
                throw new ArgumentException($"Deleting '{op.Key}' with expected revision 0 (must not exist) deletes nothing.", nameof(operations));
        }
    }

    private (long Revision, int Changed) Apply(IReadOnlyList<StoreOperation> operations)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        using var connection = Open();
        // BEGIN IMMEDIATE (Microsoft.Data.Sqlite's default): the write lock is taken before the compares are read.
        using var transaction = connection.BeginTransaction();
        List<string>? failedKeys = null;
        List<string>? reasons = null;
        foreach (var op in operations)
        {
            if (op.ExpectedRevision is not { } expected)
                continue;
            var current = Read(connection, transaction, op.Key)?.Revision ?? 0;
            if (current != expected)
            {
                (failedKeys ??= []).Add(op.Key);
                (reasons ??= []).Add($"'{op.Key}' (expected revision {expected}, found {(current == 0 ? "none" : current)})");
            }
        }
        if (failedKeys is not null)
        {
            transaction.Rollback();
            throw new StoreConflictException(failedKeys, $"Compare failed, nothing applied: {string.Join(", ", reasons!)}.");
        }
        var revision = CurrentRevision(connection, transaction) + 1;
        var changed = 0;
        foreach (var op in operations)
        {
            using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.Parameters.AddWithValue("$k", op.Key);
            command.Parameters.AddWithValue("$r", revision);
            switch (op.Kind)
            {
                case StoreOperationKind.Put:
                    command.CommandText = """
                        INSERT INTO kv(key, value, revision) VALUES ($k, $v, $r) ON CONFLICT(key) DO UPDATE SET value = $v, revision = $r;
                        INSERT INTO changes(revision, key, deleted, value) VALUES ($r, $k, 0, $v);
                        """;
                    command.Parameters.Add("$v", SqliteType.Blob).Value = op.Value.ToArray();
                    command.ExecuteNonQuery();
                    changed++;
                    break;
                case StoreOperationKind.Delete:
                    command.CommandText = "DELETE FROM kv WHERE key = $k";
                    if (command.ExecuteNonQuery() > 0)
                    {
                        command.CommandText = "INSERT INTO changes(revision, key, deleted, value) VALUES ($r, $k, 1, NULL)";
                        command.ExecuteNonQuery();
                        changed++;
                    }
                    break;
            }
        }
        if (changed == 0)
        {
            // Nothing changed (deletes of absent keys, bare checks): the revision stays where it is, as in etcd.
            transaction.Rollback();
            return (revision - 1, 0);
        }
        using (var bump = connection.CreateCommand())
        {
            bump.Transaction = transaction;
            bump.CommandText = "UPDATE meta SET value = $r WHERE name = 'revision'";
            bump.Parameters.AddWithValue("$r", revision);
            bump.ExecuteNonQuery();
            // Compaction in steps of a tenth of the log, so the log holds between 1x and 1.1x its length.
            var step = Math.Max(1, ChangeLogRevisions / 10);
            if (revision % step == 0 && revision > ChangeLogRevisions)
            {
                bump.CommandText = "DELETE FROM changes WHERE revision <= $c; UPDATE meta SET value = $c WHERE name = 'compacted';";
                bump.Parameters.AddWithValue("$c", revision - ChangeLogRevisions);
                bump.ExecuteNonQuery();
            }
        }
        transaction.Commit();
        Interlocked.Exchange(ref _committed, NewCommitSignal()).TrySetResult();
        return (revision, changed);
    }

    private static StoreEntry? Read(SqliteConnection connection, SqliteTransaction? transaction, string key)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "SELECT value, revision FROM kv WHERE key = $k";
        command.Parameters.AddWithValue("$k", key);
        using var reader = command.ExecuteReader();
        return reader.Read() ? new StoreEntry(key, (byte[])reader[0], reader.GetInt64(1)) : null;
    }

    private static long CurrentRevision(SqliteConnection connection, SqliteTransaction? transaction) => Meta(connection, "revision", transaction);

    private static long Meta(SqliteConnection connection, string name, SqliteTransaction? transaction = null)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "SELECT value FROM meta WHERE name = $n";
        command.Parameters.AddWithValue("$n", name);
        return (long)command.ExecuteScalar()!;
    }

    /// <summary>
    /// The smallest string above every key that starts with <paramref name="prefix"/>: the prefix with its last character raised
    /// by one (UTF-8 order is code point order); null when that is no character (the empty prefix, a surrogate, U+D7FF, U+FFFF).
    /// </summary>
    private static string? RangeEnd(string prefix) =>
        prefix.Length > 0 && prefix[^1] is var last && last != char.MaxValue && !char.IsSurrogate(last) && !char.IsSurrogate((char)(last + 1))
            ? prefix[..^1] + (char)(last + 1)
            : null;

    private static TaskCompletionSource NewCommitSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private SqliteConnection Open()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var connection = new SqliteConnection(_connectionString);
        try
        {
            connection.Open();
        }
        catch (SqliteException e)
        {
            connection.Dispose();
            throw new StoreUnavailableException($"Cannot open the state database {Path}: {e.Message}", e);
        }
        return connection;
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
