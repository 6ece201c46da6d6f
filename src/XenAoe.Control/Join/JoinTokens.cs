using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using XenAoe.Control.Model;
using XenAoe.Control.Store;

namespace XenAoe.Control.Join;

/// <summary>
/// The cluster's identity (<c>meta/cluster</c>) and its join tokens (<c>join-tokens/ID</c>) in the state store. A join token is
/// <c>ID.SECRET</c> (6 and 32 hex digits); a machine trades it at <c>POST /api/v1/join</c> for the cluster's API token.
/// Tokens are short-lived (<see cref="DefaultTtl"/>) and serve any number of joins until they expire or are revoked, as
/// kubeadm's bootstrap tokens do: one printed command joins every machine of a rack, and the short life bounds what a leaked
/// one is worth. Only the secret's SHA-256 is stored.
/// </summary>
public sealed partial class JoinTokens(ControllerState state)
{
    public static readonly TimeSpan DefaultTtl = TimeSpan.FromHours(1);
    public static readonly TimeSpan MinTtl = TimeSpan.FromMinutes(1);
    public static readonly TimeSpan MaxTtl = TimeSpan.FromDays(7);

    private const string ClusterKey = "meta/cluster";
    private const string Prefix = "join-tokens/";
    private static readonly ControlJsonContext Json = ControlJsonContext.Default;

    public Task<ClusterRecord?> ClusterAsync(CancellationToken ct) => state.GetAsync(ClusterKey, Json.ClusterRecord, ct);

    /// <summary>Creates the cluster's identity; refused (409) when it has one.</summary>
    public async Task<ClusterRecord> InitAsync(CancellationToken ct)
    {
        var cluster = new ClusterRecord(Guid.NewGuid().ToString(), state.Time.GetUtcNow());
        try
        {
            await state.Store.PutAsync(ClusterKey, JsonSerializer.SerializeToUtf8Bytes(cluster, Json.ClusterRecord), expectedRevision: 0, ct).ConfigureAwait(false);
            return cluster;
        }
        catch (StoreConflictException)
        {
            var existing = await ClusterAsync(ct).ConfigureAwait(false);
            throw new ControlException($"the cluster has its identity already ({existing?.Id}, created {existing?.CreatedAt:u}): `xenaoe cluster token create` makes another join token", 409);
        }
    }

    /// <summary>A new join token valid for <paramref name="ttl"/>; the token itself is returned only here.</summary>
    public async Task<(JoinTokenRecord Record, string Token, ClusterRecord Cluster)> CreateAsync(TimeSpan ttl, CancellationToken ct)
    {
        if (ttl < MinTtl || ttl > MaxTtl)
            throw new ControlException($"a join token lives {MinTtl.TotalSeconds:0} s to {MaxTtl.TotalDays:0} days, not {ttl.TotalSeconds:0} s");
        var cluster = await ClusterAsync(ct).ConfigureAwait(false) ?? throw NoIdentity();
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        var secret = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var now = state.Time.GetUtcNow();
        var record = new JoinTokenRecord(id, Sha256(secret), now, now + ttl, []);
        // expectedRevision 0: two tokens drawing the same id (one in 16 million) fail loudly rather than replace each other.
        await state.Store.PutAsync(Prefix + id, JsonSerializer.SerializeToUtf8Bytes(record, Json.JoinTokenRecord), expectedRevision: 0, ct).ConfigureAwait(false);
        return (record, $"{id}.{secret}", cluster);
    }

    public Task<IReadOnlyList<JoinTokenRecord>> ListAsync(CancellationToken ct) => state.ListAsync(Prefix, Json.JoinTokenRecord, ct);

    /// <summary>Deletes a token: it joins nothing more. 404 when there is none of that id.</summary>
    public async Task RevokeAsync(string id, CancellationToken ct)
    {
        if (!IdPattern().IsMatch(id) || !await state.Store.DeleteAsync(Prefix + id, null, ct).ConfigureAwait(false))
            throw new ControlException($"no join token {id}", 404);
    }

    /// <summary>
    /// Checks a join token and records which machine used it. Refusals (403) say why: not a token, unknown (revoked, or another
    /// cluster's), wrong secret, expired. The secret is 128 random bits, so guessing through this unauthenticated call is hopeless.
    /// </summary>
    public async Task<ClusterRecord> RedeemAsync(string token, string role, string name, CancellationToken ct)
    {
        if (token.Split('.') is not [var id, var secret] || !IdPattern().IsMatch(id) || !SecretPattern().IsMatch(secret))
            throw new ControlException("that is not a join token: one looks like 3f9a1c.0123456789abcdef0123456789abcdef (`xenaoe cluster token create` makes one)", 403);
        var record = await state.GetAsync(Prefix + id, Json.JoinTokenRecord, ct).ConfigureAwait(false)
            ?? throw new ControlException($"join token {id} is not known to this controller: it was revoked, or another cluster made it", 403);
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(Sha256(secret)), Encoding.ASCII.GetBytes(record.SecretSha256)))
            throw new ControlException($"join token {id}: wrong secret", 403);
        var now = state.Time.GetUtcNow();
        if (now >= record.ExpiresAt)
            throw new ControlException($"join token {id} expired at {record.ExpiresAt:u}: make a new one with `xenaoe cluster token create`", 403);
        var cluster = await ClusterAsync(ct).ConfigureAwait(false) ?? throw NoIdentity();
        await state.UpdateAsync(Prefix + id, r => r with { Joined = [.. r.Joined, new JoinUse(name, role, now)] }, Json.JoinTokenRecord, ct).ConfigureAwait(false);
        return cluster;
    }

    private static ControlException NoIdentity() => new("the cluster has no identity yet: run `xenaoe cluster init` on the controller first", 409);

    private static string Sha256(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.ASCII.GetBytes(secret)));

    [GeneratedRegex("^[0-9a-f]{6}$")]
    private static partial Regex IdPattern();

    [GeneratedRegex("^[0-9a-f]{32}$")]
    private static partial Regex SecretPattern();
}
