using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json.Nodes;

namespace XenAoe.Control.Store;

/// <summary>
/// <see cref="IStateStore"/> on an etcd v3 cluster through its JSON gateway (the gRPC client packages do not restore here).
/// Keys live under <see cref="KeyPrefix"/>; revisions are etcd's (one per write transaction, cluster-wide). Compare-and-swap
/// is a <c>/v3/kv/txn</c> on <c>mod_revision</c> (or <c>create_revision == 0</c> for "must not exist"). Requests go to the
/// member that last answered and move on to the next when it does not. Thread-safe.
/// </summary>
public sealed class EtcdStateStore : IStateStore
{
    private readonly EtcdGateway _gateway;
    private readonly TimeProvider _time;

    /// <param name="endpoints">Client URLs of the members, e.g. http://127.0.0.1:2379.</param>
    /// <param name="keyPrefix">Prepended to every key; default <c>/xenaoe/</c>.</param>
    /// <param name="requestTimeout">Per member and request before the next member is tried; default 5 s.</param>
    public EtcdStateStore(IReadOnlyList<Uri> endpoints, string keyPrefix = "/xenaoe/", TimeSpan? requestTimeout = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        StoreKeys.ValidateKey(keyPrefix);
        KeyPrefix = keyPrefix;
        _time = time ?? TimeProvider.System;
        _gateway = new EtcdGateway(endpoints, requestTimeout ?? TimeSpan.FromSeconds(5));
    }

    public string KeyPrefix { get; }

    public IReadOnlyList<Uri> Endpoints => _gateway.Endpoints;

    internal EtcdGateway Gateway => _gateway;

    public async Task<StoreEntry?> GetAsync(string key, CancellationToken ct = default)
    {
        StoreKeys.ValidateKey(key);
        var response = await _gateway.PostAsync("/v3/kv/range", new JsonObject { ["key"] = Encode(key) }, ct).ConfigureAwait(false);
        return response["kvs"] is JsonArray { Count: > 0 } kvs ? ToEntry(kvs[0]!) : null;
    }

    public async Task<IReadOnlyList<StoreEntry>> ListAsync(string prefix, CancellationToken ct = default)
    {
        StoreKeys.ValidatePrefix(prefix);
        var full = Encoding.UTF8.GetBytes(KeyPrefix + prefix);
        // etcd sorts a range by key (bytes, ascending) unless told otherwise.
        var response = await _gateway.PostAsync("/v3/kv/range", new JsonObject
        {
            ["key"] = Convert.ToBase64String(full),
            ["range_end"] = Convert.ToBase64String(RangeEnd(full)),
        }, ct).ConfigureAwait(false);
        return response["kvs"] is JsonArray kvs ? [.. kvs.Select(kv => ToEntry(kv!))] : [];
    }

    public async Task<long> PutAsync(string key, ReadOnlyMemory<byte> value, long? expectedRevision = null, CancellationToken ct = default)
    {
        if (expectedRevision is not null)
            return await TransactAsync([StoreOperation.Put(key, value, expectedRevision)], ct).ConfigureAwait(false);
        StoreKeys.ValidateKey(key);
        StoreKeys.ValidateValue(key, value.Length);
        var response = await _gateway.PostAsync("/v3/kv/put", new JsonObject
        {
            ["key"] = Encode(key),
            ["value"] = Convert.ToBase64String(value.Span),
        }, ct).ConfigureAwait(false);
        return EtcdGateway.Int64(response["header"]?["revision"]);
    }

    public async Task<bool> DeleteAsync(string key, long? expectedRevision = null, CancellationToken ct = default)
    {
        if (expectedRevision == 0)
            throw new ArgumentOutOfRangeException(nameof(expectedRevision), "Deleting a key that must not exist deletes nothing; pass null or the key's revision.");
        var operation = StoreOperation.Delete(key, expectedRevision);
        var response = await TransactCoreAsync([operation], ct).ConfigureAwait(false);
        return EtcdGateway.Int64(response["responses"]?[0]?["response_delete_range"]?["deleted"]) > 0;
    }

    public async Task<long> TransactAsync(IReadOnlyList<StoreOperation> operations, CancellationToken ct = default)
    {
        var response = await TransactCoreAsync(operations, ct).ConfigureAwait(false);
        return EtcdGateway.Int64(response["header"]?["revision"]);
    }

    public async IAsyncEnumerable<StoreEvent> WatchAsync(string prefix, long fromRevision = 0, [EnumeratorCancellation] CancellationToken ct = default)
    {
        StoreKeys.ValidatePrefix(prefix);
        ArgumentOutOfRangeException.ThrowIfNegative(fromRevision);
        var full = Encoding.UTF8.GetBytes(KeyPrefix + prefix);
        var next = fromRevision;
        var attempt = 0;
        var failures = 0;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var create = new JsonObject
            {
                ["key"] = Convert.ToBase64String(full),
                ["range_end"] = Convert.ToBase64String(RangeEnd(full)),
            };
            if (next > 0)
                create["start_revision"] = next.ToString(System.Globalization.CultureInfo.InvariantCulture);
            HttpResponseMessage? response = null;
            StreamReader? reader = null;
            try
            {
                (response, _) = await _gateway.OpenStreamAsync("/v3/watch", new JsonObject { ["create_request"] = create }, attempt, ct).ConfigureAwait(false);
                reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false), Encoding.UTF8);
            }
            catch (Exception e) when (e is HttpRequestException or IOException && !ct.IsCancellationRequested)
            {
                // This member is down: move to the next; after a full round of failures, pause before the next round.
                response?.Dispose();
                attempt++;
                if (++failures % _gateway.Endpoints.Count == 0)
                    await Task.Delay(TimeSpan.FromMilliseconds(500), _time, ct).ConfigureAwait(false);
                continue;
            }
            using (response)
            using (reader)
            {
                while (true)
                {
                    string? line;
                    try
                    {
                        line = await reader.ReadLineAsync(ct).ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is HttpRequestException or IOException && !ct.IsCancellationRequested)
                    {
                        // The member died mid-stream: reconnect elsewhere from the next unseen revision.
                        line = null;
                    }
                    if (line is null)
                        break;
                    if (line.Length == 0 || JsonNode.Parse(line)?["result"] is not JsonObject result)
                        continue;
                    failures = 0;
                    if (EtcdGateway.Int64(result["compact_revision"]) is var compacted and > 0)
                        throw new StoreUnavailableException($"etcd compacted revisions up to {compacted}; a watch from {next} cannot continue. Re-list and watch from the listed revision.");
                    if (next == 0 && result["created"] is not null)
                        next = EtcdGateway.Int64(result["header"]?["revision"]) + 1;
                    if (result["events"] is not JsonArray events)
                        continue;
                    foreach (var e in events)
                    {
                        var kv = e!["kv"]!;
                        var deleted = (string?)e["type"] == "DELETE";
                        var revision = EtcdGateway.Int64(kv["mod_revision"]);
                        next = revision + 1;
                        yield return new StoreEvent(deleted ? StoreEventKind.Delete : StoreEventKind.Put, DecodeKey(kv["key"]),
                            deleted ? ReadOnlyMemory<byte>.Empty : DecodeValue(kv["value"]), revision);
                    }
                }
            }
            attempt++;
        }
    }

    /// <summary>Leadership through a lease-bound key <c>PREFIX/elections/NAME</c>.</summary>
    /// <param name="leaseTtl">How long a dead leader keeps leadership; default 5 s (etcd's minimum is about 2 s).</param>
    public EtcdLeaderElection CreateLeaderElection(string name = "controller", TimeSpan? leaseTtl = null) =>
        new(this, name, leaseTtl ?? TimeSpan.FromSeconds(5), _time);

    public ValueTask DisposeAsync()
    {
        _gateway.Dispose();
        return ValueTask.CompletedTask;
    }

    internal async Task<JsonObject> TransactCoreAsync(IReadOnlyList<StoreOperation> operations, CancellationToken ct)
    {
        SqliteStateStore.CheckOperations(operations);
        var compares = new JsonArray();
        var success = new JsonArray();
        var compared = new List<string>();
        foreach (var op in operations)
        {
            var key = Encode(op.Key);
            if (op.ExpectedRevision is { } expected)
            {
                compared.Add(op.Key);
                compares.Add(expected == 0
                    ? new JsonObject { ["key"] = key, ["target"] = "CREATE", ["result"] = "EQUAL", ["create_revision"] = "0" }
                    : new JsonObject { ["key"] = key, ["target"] = "MOD", ["result"] = "EQUAL", ["mod_revision"] = expected.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            }
            switch (op.Kind)
            {
                case StoreOperationKind.Put:
                    success.Add(new JsonObject { ["request_put"] = new JsonObject { ["key"] = key, ["value"] = Convert.ToBase64String(op.Value.Span) } });
                    break;
                case StoreOperationKind.Delete:
                    success.Add(new JsonObject { ["request_delete_range"] = new JsonObject { ["key"] = key } });
                    break;
            }
        }
        var response = await _gateway.PostAsync("/v3/kv/txn", new JsonObject { ["compare"] = compares, ["success"] = success }, ct).ConfigureAwait(false);
        if (compared.Count > 0 && response["succeeded"]?.GetValue<bool>() != true)
            throw new StoreConflictException(compared, $"Compare failed, nothing applied: one of {string.Join(", ", compared.Select(k => $"'{k}'"))} changed.");
        return response;
    }

    internal string Encode(string key) => Convert.ToBase64String(Encoding.UTF8.GetBytes(KeyPrefix + key));

    private StoreEntry ToEntry(JsonNode kv) =>
        new(DecodeKey(kv["key"]), DecodeValue(kv["value"]), EtcdGateway.Int64(kv["mod_revision"]));

    private string DecodeKey(JsonNode? node)
    {
        var full = Encoding.UTF8.GetString(Convert.FromBase64String((string?)node ?? ""));
        return full.StartsWith(KeyPrefix, StringComparison.Ordinal) ? full[KeyPrefix.Length..] : full;
    }

    // The gateway leaves out empty values (proto3 JSON omits defaults).
    private static byte[] DecodeValue(JsonNode? node) => node is null ? [] : Convert.FromBase64String((string)node!);

    /// <summary>The smallest key after every key that starts with <paramref name="prefix"/>: the last byte below 0xff plus one.</summary>
    private static byte[] RangeEnd(byte[] prefix)
    {
        var end = (byte[])prefix.Clone();
        for (var i = end.Length - 1; i >= 0; i--)
        {
            if (end[i] < 0xff)
            {
                end[i]++;
                return end[..(i + 1)];
            }
        }
        return [0]; // "\0" as range_end: every key from the prefix on.
    }
}
