using XenAoe.Control.Store;

namespace XenAoe.Control.Tests.Store;

public sealed class SqliteStateStoreTests : StateStoreContractTests, IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("xenaoe-store-").FullName;

    private string DatabasePath => Path.Combine(_directory, "controller.db");

    protected override Task<IStateStore> CreateStoreAsync() =>
        Task.FromResult<IStateStore>(new SqliteStateStore(DatabasePath, TimeSpan.FromMilliseconds(20)));

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task The_file_keeps_values_and_revisions_across_a_restart()
    {
        var revision = await Store.PutAsync("vms/vm1", "kept");
        await Store.DisposeAsync();
        await using var reopened = new SqliteStateStore(DatabasePath);
        var entry = await reopened.GetAsync("vms/vm1");
        Assert.Equal("kept", entry!.ValueText);
        Assert.Equal(revision, entry.Revision);
        Assert.True(await reopened.PutAsync("vms/vm2", "x") > revision, "the revision counter continues after a restart");
    }

    [Fact]
    public async Task The_database_is_in_WAL_mode()
    {
        await Store.PutAsync("vms/vm1", "x");
        Assert.True(File.Exists(DatabasePath + "-wal"), "expected a -wal file beside the database");
    }

    [Fact]
    public async Task A_second_controller_on_the_same_file_waits_until_the_leader_resigns()
    {
        var store = (SqliteStateStore)Store;
        await using var first = store.CreateLeaderElection(TimeSpan.FromMilliseconds(20));
        await using var second = store.CreateLeaderElection(TimeSpan.FromMilliseconds(20));
        await first.CampaignAsync("ctl-a");
        Assert.True(first.IsLeader);
        var campaign = second.CampaignAsync("ctl-b");
        await Task.Delay(200);
        Assert.False(campaign.IsCompleted, "the second candidate must wait while the first holds the lock");
        Assert.Equal("ctl-a", await second.GetLeaderAsync());
        var lost = first.LeadershipLost;
        await first.ResignAsync();
        Assert.True(lost.IsCancellationRequested);
        await campaign.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(second.IsLeader);
        Assert.Equal("ctl-b", await first.GetLeaderAsync());
    }

    [Fact]
    public async Task A_disposed_leader_releases_the_lock()
    {
        var store = (SqliteStateStore)Store;
        var first = store.CreateLeaderElection(TimeSpan.FromMilliseconds(20));
        await using var second = store.CreateLeaderElection(TimeSpan.FromMilliseconds(20));
        await first.CampaignAsync("ctl-a");
        var campaign = second.CampaignAsync("ctl-b");
        await first.DisposeAsync();
        await campaign.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(second.IsLeader);
    }

    [Fact]
    public async Task Campaigning_is_cancelled_by_its_token()
    {
        var store = (SqliteStateStore)Store;
        await using var first = store.CreateLeaderElection();
        await using var second = store.CreateLeaderElection();
        await first.CampaignAsync("ctl-a");
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => second.CampaignAsync("ctl-b", cancel.Token));
        Assert.False(second.IsLeader);
    }

    [Fact]
    public async Task A_watch_in_this_process_is_woken_by_the_commit_not_by_its_poll()
    {
        await using var store = new SqliteStateStore(Path.Combine(_directory, "woken.db"), watchPollInterval: TimeSpan.FromHours(1));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var events = store.WatchAsync("jobs/", 0, timeout.Token).GetAsyncEnumerator(timeout.Token);
        var next = events.MoveNextAsync().AsTask();
        await Task.Delay(100);
        await store.PutAsync("jobs/000001", "x");
        Assert.True(await next, "the watch ended");
        Assert.Equal("jobs/000001", events.Current.Key);
    }

    [Fact]
    public async Task The_change_log_keeps_its_last_revisions_and_a_watch_from_before_them_is_refused()
    {
        await using var store = new SqliteStateStore(Path.Combine(_directory, "compacted.db"), TimeSpan.FromMilliseconds(20), changeLogRevisions: 10);
        for (var i = 1; i <= 40; i++)
            await store.PutAsync($"vms/vm{i}", "x");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var refused = await Assert.ThrowsAsync<StoreUnavailableException>(async () =>
        {
            await foreach (var _ in store.WatchAsync("vms/", 1, timeout.Token))
                break;
        });
        Assert.Contains("compacted up to revision", refused.Message);
        await foreach (var e in store.WatchAsync("vms/", 35, timeout.Token))
        {
            Assert.Equal("vms/vm35", e.Key);
            break;
        }
    }
}
