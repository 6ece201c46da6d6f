using System.Text.Json;

namespace XenAoe.Hypervisors.Tests;

/// <summary>query-migrate replies in the shapes QEMU 7.2 sends (taken from a TCG lab migration).</summary>
public sealed class MigrationStatusTests
{
    [Fact]
    public void An_empty_reply_means_no_migration_yet()
    {
        var status = Parse("{}");

        Assert.Equal(MigrationState.None, status.State);
        Assert.False(status.IsFinished);
    }

    [Fact]
    public void An_active_migration_reports_progress_and_expected_downtime()
    {
        var status = Parse("""
            {"expected-downtime": 300, "status": "active", "setup-time": 3, "total-time": 1205,
             "ram": {"total": 135077888, "postcopy-requests": 0, "dirty-sync-count": 1, "multifd-bytes": 0,
                     "pages-per-second": 32550, "downtime-bytes": 0, "page-size": 4096, "remaining": 81264640,
                     "postcopy-bytes": 0, "mbps": 1071.21, "transferred": 53811231, "dirty-sync-missed-zero-copy": 0,
                     "precopy-bytes": 53811231, "duplicate": 12, "dirty-pages-rate": 0, "skipped": 0,
                     "normal-bytes": 53743616, "normal": 13121}}
            """);

        Assert.Equal(MigrationState.Active, status.State);
        Assert.Equal(TimeSpan.FromMilliseconds(1205), status.TotalTime);
        Assert.Equal(TimeSpan.FromMilliseconds(300), status.ExpectedDowntime);
        Assert.Null(status.Downtime);
        Assert.Equal(53811231, status.RamTransferred);
        Assert.Equal(81264640, status.RamRemaining);
        Assert.Equal(135077888, status.RamTotal);
        Assert.False(status.IsFinished);
    }

    [Fact]
    public void A_completed_migration_reports_downtime_and_total_time()
    {
        var status = Parse("""
            {"status": "completed", "setup-time": 2, "downtime": 43, "total-time": 1867,
             "ram": {"total": 135077888, "remaining": 0, "transferred": 135536721, "mbps": 594.3, "normal": 33012}}
            """);

        Assert.Equal(MigrationState.Completed, status.State);
        Assert.Equal(TimeSpan.FromMilliseconds(43), status.Downtime);
        Assert.Equal(TimeSpan.FromMilliseconds(1867), status.TotalTime);
        Assert.Equal(0, status.RamRemaining);
        Assert.True(status.IsFinished);
    }

    [Fact]
    public void A_failed_migration_carries_the_error_description()
    {
        var status = Parse("""{"status": "failed", "error-desc": "Failed to connect socket: Connection refused"}""");

        Assert.Equal(MigrationState.Failed, status.State);
        Assert.Equal("Failed to connect socket: Connection refused", status.Error);
        Assert.True(status.IsFinished);
    }

    [Theory]
    [InlineData("setup", MigrationState.Setup)]
    [InlineData("cancelling", MigrationState.Active)]
    [InlineData("cancelled", MigrationState.Cancelled)]
    [InlineData("pre-switchover", MigrationState.Active)]
    [InlineData("device", MigrationState.Active)]
    [InlineData("postcopy-active", MigrationState.Active)]
    public void Every_QEMU_state_word_maps_to_one_of_six_states(string raw, MigrationState expected)
    {
        var status = Parse($$"""{"status": "{{raw}}"}""");

        Assert.Equal(expected, status.State);
        Assert.Equal(raw, status.RawState);
    }

    [Fact]
    public void A_reply_that_is_not_an_object_is_rejected()
    {
        Assert.Throws<FormatException>(() => Parse("[]"));
    }

    private static MigrationStatus Parse(string json)
    {
        using var document = JsonDocument.Parse(json);
        return MigrationStatus.Parse(document.RootElement);
    }
}
