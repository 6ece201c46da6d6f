using XenAoe.Control.Join;
using XenAoe.Control.Store;

namespace XenAoe.Control.Tests.Join;

/// <summary>The cluster identity and join tokens over a real SQLite store, on a clock the test moves.</summary>
public sealed class JoinTokenTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("xenaoe-join-").FullName;
    private readonly ManualClock _clock = new(new DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero));
    private IStateStore _store = null!;
    private JoinTokens _tokens = null!;

    public Task InitializeAsync()
    {
        _store = new SqliteStateStore(Path.Combine(_directory, "state.db"));
        _tokens = new JoinTokens(new ControllerState(_store, _clock));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task A_token_is_refused_until_the_cluster_has_its_identity_and_init_works_once()
    {
        var refused = await Assert.ThrowsAsync<ControlException>(() => _tokens.CreateAsync(JoinTokens.DefaultTtl, default));
        Assert.Contains("xenaoe cluster init", refused.Message);
        var cluster = await _tokens.InitAsync(default);
        var again = await Assert.ThrowsAsync<ControlException>(() => _tokens.InitAsync(default));
        Assert.Equal(409, again.Status);
        Assert.Contains(cluster.Id, again.Message);
        Assert.Equal(cluster, await _tokens.ClusterAsync(default));
    }

    [Fact]
    public async Task A_token_joins_several_machines_until_it_expires_and_records_each()
    {
        var cluster = await _tokens.InitAsync(default);
        var (record, token, _) = await _tokens.CreateAsync(TimeSpan.FromHours(1), default);
        Assert.Equal(cluster, await _tokens.RedeemAsync(token, "disk", "disk1", default));
        _clock.Advance(TimeSpan.FromMinutes(59));
        Assert.Equal(cluster, await _tokens.RedeemAsync(token, "cpu", "cpu1", default));
        Assert.Equal(["disk1", "cpu1"], (await _tokens.ListAsync(default)).Single().Joined.Select(j => j.Name));

        _clock.Advance(TimeSpan.FromMinutes(1));
        var expired = await Assert.ThrowsAsync<ControlException>(() => _tokens.RedeemAsync(token, "disk", "disk2", default));
        Assert.Equal(403, expired.Status);
        Assert.Contains($"join token {record.Id} expired", expired.Message);
    }

    [Fact]
    public async Task Only_the_secrets_hash_is_stored()
    {
        await _tokens.InitAsync(default);
        var (_, token, _) = await _tokens.CreateAsync(JoinTokens.DefaultTtl, default);
        var secret = token.Split('.')[1];
        foreach (var entry in await _store.ListAsync(""))
            Assert.DoesNotContain(secret, entry.ValueText, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", "not a join token")]
    [InlineData("nonsense", "not a join token")]
    [InlineData("abcdef.0123", "not a join token")]
    [InlineData("ABCDEF.0123456789abcdef0123456789abcdef", "not a join token")]
    [InlineData("000000.0123456789abcdef0123456789abcdef", "join token 000000 is not known")]
    public async Task A_malformed_or_unknown_token_is_refused_saying_why(string token, string reason)
    {
        await _tokens.InitAsync(default);
        var refused = await Assert.ThrowsAsync<ControlException>(() => _tokens.RedeemAsync(token, "disk", "disk1", default));
        Assert.Equal(403, refused.Status);
        Assert.Contains(reason, refused.Message);
    }

    [Fact]
    public async Task A_wrong_secret_and_a_revoked_token_are_refused()
    {
        await _tokens.InitAsync(default);
        var (record, token, _) = await _tokens.CreateAsync(JoinTokens.DefaultTtl, default);
        var wrong = $"{record.Id}.{new string('0', 32)}";
        Assert.Contains("wrong secret", (await Assert.ThrowsAsync<ControlException>(() => _tokens.RedeemAsync(wrong, "disk", "d1", default))).Message);
        await _tokens.RevokeAsync(record.Id, default);
        Assert.Contains("not known", (await Assert.ThrowsAsync<ControlException>(() => _tokens.RedeemAsync(token, "disk", "d1", default))).Message);
        Assert.Equal(404, (await Assert.ThrowsAsync<ControlException>(() => _tokens.RevokeAsync(record.Id, default))).Status);
    }

    [Theory]
    [InlineData(59)]
    [InlineData(7 * 86400 + 1)]
    public async Task A_lifetime_outside_a_minute_to_a_week_is_refused(int seconds)
    {
        await _tokens.InitAsync(default);
        await Assert.ThrowsAsync<ControlException>(() => _tokens.CreateAsync(TimeSpan.FromSeconds(seconds), default));
        Assert.Empty(await _tokens.ListAsync(default));
    }

    private sealed class ManualClock(DateTimeOffset start) : TimeProvider
    {
        private DateTimeOffset _now = start;

        public override DateTimeOffset GetUtcNow() => _now;

        public void Advance(TimeSpan by) => _now += by;
    }
}
