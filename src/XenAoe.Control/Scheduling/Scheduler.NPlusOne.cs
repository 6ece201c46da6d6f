namespace XenAoe.Control.Scheduling;

public static partial class Scheduler
{
    /// <summary>
    /// The aggregates of the N+1 tests (see the class remarks) for one VM shape, taken in one pass over the hosts; then
    /// <see cref="Failure"/> answers per candidate host. Targets are up hosts; the hosts whose loss must be covered are the
    /// up and draining ones that have VMs.
    /// </summary>
    private readonly struct NPlusOneCheck
    {
        private readonly Cluster _cluster;
        private readonly long _ram;
        private readonly int _vcpus;
        private readonly long _slotRam;
        private readonly int _slotVcpus;
        private readonly long _totalFreeRam;
        private readonly long _totalFreeVcpus;
        private readonly long _maxRamTerm;
        private readonly int _maxRamHost;
        private readonly long _maxVcpuTerm;
        private readonly int _maxVcpuHost;
        private readonly long _slots;
        private readonly long _top1;
        private readonly int _top1Host;
        private readonly long _top2;

        public NPlusOneCheck(Cluster cluster, long ram, int vcpus)
        {
            _cluster = cluster;
            _ram = ram;
            _vcpus = vcpus;
            var (shapeRam, shapeVcpus) = cluster.MaxVmShape();
            _slotRam = Math.Max(shapeRam, ram);
            _slotVcpus = Math.Max(shapeVcpus, vcpus);
            _maxRamHost = _maxVcpuHost = _top1Host = -1;
            for (var h = 0; h < cluster.HostCount; h++)
            {
                var state = cluster.HostStates[h];
                if (state == ServerState.Down)
                    continue;
                var target = state == ServerState.Up;
                var freeRam = target ? Math.Max(0, cluster.FreeRam(h)) : 0;
                var freeVcpus = target ? Math.Max(0, cluster.FreeVcpus(h)) : 0;
                var slots = target ? Slots(freeRam, freeVcpus) : 0;
                _totalFreeRam += freeRam;
                _totalFreeVcpus += freeVcpus;
                _slots += slots;
                var count = cluster.HostVms[h].Count;
                if (count == 0)
                    continue;
                var ramTerm = cluster.UsedRam[h] + freeRam;
                if (ramTerm > _maxRamTerm)
                    (_maxRamTerm, _maxRamHost) = (ramTerm, h);
                var vcpuTerm = cluster.UsedVcpus[h] + freeVcpus;
                if (vcpuTerm > _maxVcpuTerm)
                    (_maxVcpuTerm, _maxVcpuHost) = (vcpuTerm, h);
                var t = count + slots;
                if (t > _top1)
                {
                    _top2 = _top1;
                    (_top1, _top1Host) = (t, h);
                }
                else if (t > _top2)
                {
                    _top2 = t;
                }
            }
        }

        private long Slots(long freeRam, long freeVcpus) => Math.Min(freeRam / _slotRam, freeVcpus / _slotVcpus);

        /// <summary>Null when placing the VM on <paramref name="c"/> (an up host it fits) keeps N+1; else why not.</summary>
        public string? Failure(int c, string vmName, ref int budget)
        {
            var cluster = _cluster;
            var freeRamC = cluster.FreeRam(c);
            var freeVcpusC = cluster.FreeVcpus(c);

            // (1) Necessary: losing any host f leaves used_f to the others' free. The candidate's term becomes its capacity.
            var totalFreeRam = _totalFreeRam - _ram;
            var totalFreeVcpus = _totalFreeVcpus - _vcpus;
            var (ramTerm, ramHost) = cluster.UsableRam[c] > _maxRamTerm ? (cluster.UsableRam[c], c) : (_maxRamTerm, _maxRamHost);
            if (ramTerm > totalFreeRam)
            {
                var used = cluster.UsedRam[ramHost] + (ramHost == c ? _ram : 0);
                return $"fits, but then losing {cluster.Hosts[ramHost].Name} would leave {used} MiB of VMs "
                    + $"for {totalFreeRam - (ramTerm - used)} MiB free on the other hosts";
            }
            var (vcpuTerm, vcpuHost) = cluster.VcpuCapacity[c] > _maxVcpuTerm ? (cluster.VcpuCapacity[c], c) : (_maxVcpuTerm, _maxVcpuHost);
            if (vcpuTerm > totalFreeVcpus)
            {
                var used = cluster.UsedVcpus[vcpuHost] + (vcpuHost == c ? _vcpus : 0);
                return $"fits, but then losing {cluster.Hosts[vcpuHost].Name} would leave {used} vCPUs of VMs "
                    + $"for {totalFreeVcpus - (vcpuTerm - used)} vCPUs free on the other hosts";
            }

            // (2) Sufficient: every host's VMs fit in the slots of largest-VM shape on the others.
            var oldSlots = Slots(Math.Max(0, freeRamC), Math.Max(0, freeVcpusC));
            var newSlots = Slots(freeRamC - _ram, freeVcpusC - _vcpus);
            var slots = _slots - oldSlots + newSlots;
            var tc = cluster.HostVms[c].Count + 1 + newSlots;
            var other = _top1Host == c ? _top2 : _top1;
            if (tc <= slots && other <= slots)
                return null;

            // Inconclusive: replay the failover of each host the slot test cannot vouch for.
            for (var f = 0; f < cluster.HostCount; f++)
            {
                var state = cluster.HostStates[f];
                if (state == ServerState.Down || (f != c && cluster.HostVms[f].Count == 0))
                    continue;
                var t = f == c ? tc : cluster.HostVms[f].Count + (state == ServerState.Up ? Slots(
                    Math.Max(0, cluster.FreeRam(f)), Math.Max(0, cluster.FreeVcpus(f))) : 0);
                if (t <= slots)
                    continue;
                var stuck = ReplayFailover(f, c, vmName, ref budget);
                if (stuck is not null)
                    return $"fits, but then {stuck}";
            }
            return null;
        }

        /// <summary>
        /// Replays <see cref="PlanFailover"/> of host <paramref name="f"/> as if the VM were on <paramref name="c"/>:
        /// null when every VM finds a host, else which one does not.
        /// </summary>
        private string? ReplayFailover(int f, int c, string vmName, ref int budget)
        {
            var cluster = _cluster;
            var n = cluster.HostCount;
            if (budget < n)
                return $"N+1 for losing {cluster.Hosts[f].Name} is not proven within the check budget";
            var freeRam = new long[n];
            var freeVcpus = new int[n];
            for (var h = 0; h < n; h++)
            {
                var target = h != f && cluster.HostStates[h] == ServerState.Up;
                freeRam[h] = target ? cluster.FreeRam(h) - (h == c ? _ram : 0) : -1;
                freeVcpus[h] = target ? cluster.FreeVcpus(h) - (h == c ? _vcpus : 0) : -1;
            }

            var list = cluster.HostVms[f];
            var items = new (long Ram, int Vcpus, string Name)[list.Count + (f == c ? 1 : 0)];
            for (var i = 0; i < list.Count; i++)
            {
                var vm = cluster.Vms[list[i]]!;
                items[i] = (vm.RamMiB, vm.Vcpus, vm.Name);
            }
            if (f == c)
                items[^1] = (_ram, _vcpus, vmName);
            Array.Sort(items, LargestFirst);

            foreach (var (ram, vcpus, name) in items)
            {
                if (budget < n)
                    return $"N+1 for losing {cluster.Hosts[f].Name} is not proven within the check budget";
                budget -= n;
                var best = -1;
                for (var h = 0; h < n; h++)
                {
                    if (freeRam[h] < ram || freeVcpus[h] < vcpus)
                        continue;
                    if (best < 0 || freeRam[h] > freeRam[best] || (freeRam[h] == freeRam[best] && freeVcpus[h] > freeVcpus[best]))
                        best = h;
                }
                if (best < 0)
                    return $"losing {cluster.Hosts[f].Name} would leave {name} ({ram} MiB, {vcpus} vCPUs) with no host";
                freeRam[best] -= ram;
                freeVcpus[best] -= vcpus;
            }
            return null;
        }
    }

    /// <summary>The order failovers and evacuations move VMs in: most RAM, then most vCPUs, then name.</summary>
    private static int LargestFirst((long Ram, int Vcpus, string Name) a, (long Ram, int Vcpus, string Name) b)
    {
        var c = b.Ram.CompareTo(a.Ram);
        if (c != 0)
            return c;
        c = b.Vcpus.CompareTo(a.Vcpus);
        return c != 0 ? c : string.CompareOrdinal(a.Name, b.Name);
    }
}
