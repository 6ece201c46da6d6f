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
}
