using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace XenAoe.Control.Store;

/// <summary>
/// Leader election on etcd: a candidate holds a lease (TTL <see cref="LeaseTtl"/>) kept alive in the background every third
/// of the TTL, and leads while the key <c>elections/NAME</c> exists, created by a txn "if absent" bound to that lease.
/// Standbys watch the key and retry when it is deleted: at once when the leader resigns, about one TTL after it died
/// (etcd expires its lease). The leader loses leadership when a keep-alive reports the lease gone or no member has
/// renewed it for a whole TTL.
/// </summary>
public sealed class EtcdLeaderElection : ILeaderElection
{
    private readonly EtcdStateStore _store;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private CancellationTokenSource _lost;
    private CancellationTokenSource? _keepAliveStop;
    private Task? _keepAlive;
    private long _leaseId;
    private long _leaderRevision;
    private int _disposed;

    internal EtcdLeaderElection(EtcdStateStore store, string name, TimeSpan leaseTtl, TimeProvider time)
    {
        StoreKeys.ValidateKey(name);
        if (leaseTtl < TimeSpan.FromSeconds(1))
            throw new ArgumentOutOfRangeException(nameof(leaseTtl), leaseTtl, "An etcd lease TTL is whole seconds, at least 1 (etcd raises it to its minimum, about 2 s).");
        _store = store;
        _time = time;
        Key = "elections/" + name;
        LeaseTtl = leaseTtl;
        _lost = new CancellationTokenSource();
        _lost.Cancel();
    }

    /// <summary>The election key, relative to the store's prefix.</summary>
    public string Key { get; }

    public TimeSpan LeaseTtl { get; }

    public bool IsLeader
    {
        get
        {
            lock (_lock)
                return _leaderRevision != 0;
        }
    }

    public CancellationToken LeadershipLost
    {
        get
        {
            lock (_lock)
                return _lost.Token;
        }
    }

    public async Task CampaignAsync(string candidateId, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(candidateId);
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (IsLeader)
            return;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var lease = await EnsureLeaseAsync(ct).ConfigureAwait(false);
            var key = _store.Encode(Key);
            var response = await _store.Gateway.PostAsync("/v3/kv/txn", new JsonObject
            {
                ["compare"] = new JsonArray(new JsonObject { ["key"] = key, ["target"] = "CREATE", ["result"] = "EQUAL", ["create_revision"] = "0" }),
                ["success"] = new JsonArray(new JsonObject
                {
                    ["request_put"] = new JsonObject
                    {
                        ["key"] = key,
                        ["value"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(candidateId)),
                        ["lease"] = lease.ToString(CultureInfo.InvariantCulture),
                    },
                }),
            }, ct).ConfigureAwait(false);
            var revision = EtcdGateway.Int64(response["header"]?["revision"]);
            if (response["succeeded"]?.GetValue<bool>() == true)
            {
                lock (_lock)
                {
                    _leaderRevision = revision;
                    _lost = new CancellationTokenSource();
                }
                return;
            }
            await WaitForVacancyAsync(revision + 1, ct).ConfigureAwait(false);
        }
    }

    public async Task ResignAsync(CancellationToken ct = default)
    {
        long revision;
        long lease;
        lock (_lock)
        {
            revision = _leaderRevision;
            lease = _leaseId;
        }
        StopKeepAlive();
        if (revision != 0)
        {
            // Delete only our own key: a new leader's key (after our lease lapsed) has another create revision.
            var key = _store.Encode(Key);
            await _store.Gateway.PostAsync("/v3/kv/txn", new JsonObject
            {
                ["compare"] = new JsonArray(new JsonObject { ["key"] = key, ["target"] = "CREATE", ["result"] = "EQUAL", ["create_revision"] = revision.ToString(CultureInfo.InvariantCulture) }),
                ["success"] = new JsonArray(new JsonObject { ["request_delete_range"] = new JsonObject { ["key"] = key } }),
            }, ct).ConfigureAwait(false);
        }
        if (lease != 0)
            await _store.Gateway.PostAsync("/v3/lease/revoke", new JsonObject { ["ID"] = lease.ToString(CultureInfo.InvariantCulture) }, ct).ConfigureAwait(false);
        Lose();
    }

    public async Task<string?> GetLeaderAsync(CancellationToken ct = default) =>
        (await _store.GetAsync(Key, ct).ConfigureAwait(false))?.ValueText;

    /// <summary>Stops the keep-alive without resigning, as a crash would: others take over once the lease expires.</summary>
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            StopKeepAlive();
            Lose();
        }
        return ValueTask.CompletedTask;
    }

    private async Task<long> EnsureLeaseAsync(CancellationToken ct)
    {
        lock (_lock)
        {
            if (_leaseId != 0)
                return _leaseId;
        }
        var ttl = (long)Math.Ceiling(LeaseTtl.TotalSeconds);
        var response = await _store.Gateway.PostAsync("/v3/lease/grant", new JsonObject { ["TTL"] = ttl }, ct).ConfigureAwait(false);
        var id = EtcdGateway.Int64(response["ID"]);
        if (id == 0)
            throw new StoreUnavailableException($"etcd granted no lease: {response.ToJsonString()}");
        var stop = new CancellationTokenSource();
        lock (_lock)
        {
            _leaseId = id;
            _keepAliveStop = stop;
            _keepAlive = Task.Run(() => KeepAliveAsync(id, stop.Token), CancellationToken.None);
        }
        return id;
    }

    private async Task KeepAliveAsync(long lease, CancellationToken stop)
    {
        var interval = LeaseTtl / 3;
        var lastRenewed = _time.GetTimestamp();
        var body = new JsonObject { ["ID"] = lease.ToString(CultureInfo.InvariantCulture) };
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(interval, _time, stop).ConfigureAwait(false);
                var response = await _store.Gateway.PostAsync("/v3/lease/keepalive", body, stop).ConfigureAwait(false);
                if (EtcdGateway.Int64(response["result"]?["TTL"]) <= 0)
                    break; // etcd says the lease is gone (expired or revoked).
                lastRenewed = _time.GetTimestamp();
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (StoreUnavailableException)
            {
                // No member answered this round; the lease may still be alive. Give up only once a whole TTL has passed.
                if (_time.GetElapsedTime(lastRenewed) >= LeaseTtl)
                    break;
            }
        }
        if (stop.IsCancellationRequested)
            return;
        lock (_lock)
        {
            if (_leaseId == lease)
                _leaseId = 0;
        }
        Lose();
    }

    /// <summary>Returns when the election key is deleted, or after one TTL (a missed event then costs one retry, not a hang).</summary>
    private async Task WaitForVacancyAsync(long fromRevision, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(LeaseTtl);
        try
        {
            await foreach (var e in _store.WatchAsync(Key, fromRevision, limit.Token).ConfigureAwait(false))
            {
                if (e.Kind == StoreEventKind.Delete && e.Key == Key)
                    return;
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            // One TTL without a delete: campaign again.
        }
    }

    private void StopKeepAlive()
    {
        CancellationTokenSource? stop;
        lock (_lock)
        {
            stop = _keepAliveStop;
            _keepAliveStop = null;
            _keepAlive = null;
            _leaseId = 0;
        }
        // Not disposed: the keep-alive task may still be registering on its token.
        stop?.Cancel();
    }

    private void Lose()
    {
        CancellationTokenSource lost;
        lock (_lock)
        {
            _leaderRevision = 0;
            lost = _lost;
        }
        lost.Cancel();
    }
}
