using System.Diagnostics;
using XenAoe.Control.Store;
using Xunit.Abstractions;

namespace XenAoe.IntegrationTests.Control;

/// <summary>Member loss and leader election on a fresh 3-member etcd cluster per test.</summary>
[Trait("Category", "Integration")]
public sealed class EtcdFailoverTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan s_ttl = TimeSpan.FromSeconds(2);
    private readonly EtcdCluster _cluster = new();

    public Task InitializeAsync() => _cluster.InitializeAsync();

    public Task DisposeAsync() => _cluster.DisposeAsync();

    private EtcdStateStore NewStore() => new(_cluster.ClientUrls, "/xenaoe/", TimeSpan.FromSeconds(3));

    [Fact]
    public async Task The_store_keeps_working_when_one_member_is_killed()
    {
        await using var store = NewStore();
        var before = await store.PutAsync("vms/vm1", "before");
        // The member the store talks to first dies.
        await _cluster.KillMemberAsync(0);
        var after = await store.PutAsync("vms/vm1", "after", expectedRevision: before);
        Assert.Equal("after", (await store.GetAsync("vms/vm1"))!.ValueText);
        await store.TransactAsync([StoreOperation.Put("vms/vm2", "x", 0), StoreOperation.Check("vms/vm1", after)]);
        Assert.Equal(["vms/vm1", "vms/vm2"], (await store.ListAsync("vms/")).Select(e => e.Key));
    }

    [Fact]
    public async Task A_watch_survives_the_loss_of_its_member()
    {
        await using var store = NewStore();
        var start = await store.PutAsync("jobs/1", "a");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var events = store.WatchAsync("jobs/", start, timeout.Token).GetAsyncEnumerator(timeout.Token);
        Assert.True(await events.MoveNextAsync());
        Assert.Equal("a", events.Current.ValueText);
        await _cluster.KillMemberAsync(0);
        await store.PutAsync("jobs/2", "b");
        Assert.True(await events.MoveNextAsync());
        Assert.Equal("jobs/2", events.Current.Key);
    }

    [Fact]
    public async Task Only_one_of_two_candidates_leads()
    {
        await using var store = NewStore();
        await using var a = store.CreateLeaderElection("ctl", s_ttl);
        await using var b = store.CreateLeaderElection("ctl", s_ttl);
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var campaignA = a.CampaignAsync("ctl-a", cancel.Token);
        var campaignB = b.CampaignAsync("ctl-b", cancel.Token);
        var first = await Task.WhenAny(campaignA, campaignB);
        await first;
        // Two lease TTLs with the leader alive: the other must still be waiting.
        await Task.Delay(2 * s_ttl);
        Assert.True(a.IsLeader ^ b.IsLeader, $"exactly one leader expected; a={a.IsLeader} b={b.IsLeader}");
        Assert.False(campaignA.IsCompleted && campaignB.IsCompleted);
        Assert.Equal(a.IsLeader ? "ctl-a" : "ctl-b", await a.GetLeaderAsync());
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => a.IsLeader ? campaignB : campaignA);
    }

    [Fact]
    public async Task A_standby_takes_over_about_one_lease_after_the_leader_dies()
    {
        await using var store = NewStore();
        var a = store.CreateLeaderElection("ctl", s_ttl);
        await using var b = store.CreateLeaderElection("ctl", s_ttl);
        await a.CampaignAsync("ctl-a");
        var campaignB = b.CampaignAsync("ctl-b");
        await Task.Delay(500);
        Assert.False(campaignB.IsCompleted);
        // The leader "crashes": its keep-alive stops, nothing is resigned.
        var clock = Stopwatch.StartNew();
        await a.DisposeAsync();
        await campaignB.WaitAsync(TimeSpan.FromSeconds(15));
        var takeover = clock.Elapsed;
        output.WriteLine($"takeover after leader death: {takeover.TotalMilliseconds:0} ms (lease TTL {s_ttl.TotalSeconds} s)");
        Console.WriteLine($"XENAOE-TAKEOVER: {takeover.TotalMilliseconds:0} ms with lease TTL {s_ttl.TotalSeconds} s");
        Assert.True(b.IsLeader);
        Assert.Equal("ctl-b", await b.GetLeaderAsync());
        Assert.True(takeover < s_ttl * 3, $"expected a takeover within about one lease TTL ({s_ttl.TotalSeconds} s), took {takeover.TotalSeconds:0.0} s");
    }

    [Fact]
    public async Task A_resigning_leader_hands_over_at_once()
    {
        await using var store = NewStore();
        await using var a = store.CreateLeaderElection("ctl", TimeSpan.FromSeconds(10));
        await using var b = store.CreateLeaderElection("ctl", TimeSpan.FromSeconds(10));
        await a.CampaignAsync("ctl-a");
        var lost = a.LeadershipLost;
        var campaignB = b.CampaignAsync("ctl-b");
        await Task.Delay(300);
        var clock = Stopwatch.StartNew();
        await a.ResignAsync();
        Assert.True(lost.IsCancellationRequested);
        await campaignB.WaitAsync(TimeSpan.FromSeconds(5));
        output.WriteLine($"hand-over after resign: {clock.Elapsed.TotalMilliseconds:0} ms (lease TTL 10 s)");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"a resign must hand over well before the 10 s lease; took {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.True(b.IsLeader);
    }

    [Fact]
    public async Task Leadership_survives_the_loss_of_one_member()
    {
        await using var store = NewStore();
        await using var a = store.CreateLeaderElection("ctl", s_ttl);
        await a.CampaignAsync("ctl-a");
        await _cluster.KillMemberAsync(0);
        await Task.Delay(3 * s_ttl);
        Assert.True(a.IsLeader, "the keep-alive moves to a live member");
        Assert.False(a.LeadershipLost.IsCancellationRequested);
        Assert.Equal("ctl-a", await a.GetLeaderAsync());
    }
}
