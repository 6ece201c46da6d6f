using XenAoe.Control.Store;

namespace XenAoe.Control.Tests.Store;

public sealed class StateStoreOptionsTests
{
    [Fact]
    public void A_sqlite_string_names_the_file()
    {
        var options = StateStoreOptions.Parse("sqlite:/var/lib/xenaoe/controller.db");
        Assert.Equal(StateStoreKind.Sqlite, options.Kind);
        Assert.Equal("/var/lib/xenaoe/controller.db", options.SqlitePath);
    }

    [Fact]
    public void An_etcd_string_lists_members_and_optional_settings()
    {
        var options = StateStoreOptions.Parse("etcd:http://127.0.0.1:2379, http://127.0.0.1:22379;prefix=/lab/;ttl=3");
        Assert.Equal(StateStoreKind.Etcd, options.Kind);
        Assert.Equal(["http://127.0.0.1:2379/", "http://127.0.0.1:22379/"], options.EtcdEndpoints.Select(u => u.ToString()));
        Assert.Equal("/lab/", options.EtcdKeyPrefix);
        Assert.Equal(TimeSpan.FromSeconds(3), options.LeaseTtl);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("sqlite:", "no database file")]
    [InlineData("mysql://x", "unknown store kind")]
    [InlineData("etcd:", "no etcd member")]
    [InlineData("etcd:127.0.0.1:2379", "not an etcd member URL")]
    [InlineData("etcd:http://127.0.0.1:2379/v3", "not an etcd member URL")]
    [InlineData("etcd:http://127.0.0.1:2379;ttl=0", "ttl whole seconds")]
    [InlineData("etcd:http://127.0.0.1:2379;colour=red", "not a known setting")]
    public void Bad_strings_are_refused_with_a_reason(string text, string reason)
    {
        var e = Assert.Throws<FormatException>(() => StateStoreOptions.Parse(text));
        Assert.Contains(reason, e.Message);
    }
}
