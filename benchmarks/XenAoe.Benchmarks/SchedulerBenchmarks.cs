using BenchmarkDotNet.Attributes;
using XenAoe.Control.Scheduling;

namespace XenAoe.Benchmarks;

/// <summary>
/// Places 10,000 VMs one by one (PlaceVm, then AddVm) onto 1,000 empty hosts of 256 GiB and 32 cores, keeping N+1.
/// VM shapes cycle through 1-4 vCPUs and 1-16 GiB (a fixed seed), filling about a third of the RAM. One operation is the
/// whole run; the goal is under 1 s.
/// </summary>
[MemoryDiagnoser]
public class SchedulerBenchmarks
{
    private const int HostCount = 1_000;
    private const int VmCount = 10_000;
    private HostCapacity[] _hosts = [];
    private (string Name, int Vcpus, long RamMiB)[] _vms = [];

    [GlobalSetup]
    public void Setup()
    {
        _hosts = new HostCapacity[HostCount];
        for (var i = 0; i < HostCount; i++)
            _hosts[i] = new HostCapacity($"cpu{i:D4}", 32, 262144, 4096);
        var random = new Random(42);
        long[] sizes = [1024, 2048, 4096, 8192, 16384];
        _vms = new (string, int, long)[VmCount];
        for (var i = 0; i < VmCount; i++)
            _vms[i] = ($"vm{i:D5}", random.Next(1, 5), sizes[random.Next(sizes.Length)]);
    }

    [Benchmark]
    public int Place10000VmsOn1000Hosts()
    {
        var cluster = new Cluster(_hosts);
        var placed = 0;
        foreach (var (name, vcpus, ram) in _vms)
        {
            var placement = Scheduler.PlaceVm(new PlacementRequest(name, vcpus, ram), cluster);
            if (placement.Host is null)
                continue;
            cluster.AddVm(new VmDemand(name, vcpus, ram, placement.Host));
            placed++;
        }
        if (placed != VmCount)
            throw new InvalidOperationException($"only {placed} of {VmCount} VMs were placed");
        return placed;
    }
}
