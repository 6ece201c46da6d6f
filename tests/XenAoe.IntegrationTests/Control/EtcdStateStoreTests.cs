using XenAoe.Control.Store;
using XenAoe.Control.Tests.Store;

namespace XenAoe.IntegrationTests.Control;

/// <summary>The store contract on a real 3-member etcd cluster; each test gets its own key prefix.</summary>
[Trait("Category", "Integration")]
public sealed class EtcdStateStoreTests(EtcdCluster cluster) : StateStoreContractTests, IClassFixture<EtcdCluster>
{
    protected override Task<IStateStore> CreateStoreAsync() =>
        Task.FromResult<IStateStore>(new EtcdStateStore(cluster.ClientUrls, $"/xenaoe-test/{Guid.NewGuid():N}/"));
}
