namespace XenAoe.Control.Scheduling;

/// <summary>
/// Placement of VMs on CPU servers and of mirror legs on disk servers. Pure: it reads a <see cref="Cluster"/> and returns a
/// decision; the caller applies it (<see cref="Cluster.AddVm"/>, <see cref="Cluster.MoveVm"/>, <see cref="Cluster.ReserveMirror"/>).
/// Deterministic: every tie is broken by server name (ordinal).
/// </summary>
/// <remarks>
/// <para><b>Fit.</b> A host can take a VM when it is up (not down, not draining), not excluded, has the VM's RAM free
/// (installed minus reserved minus its VMs; a hard limit) and the VM's vCPUs free (cores times the overcommit ratio).</para>
/// <para><b>Spread.</b> Among hosts that fit (and keep N+1), the one with the most free RAM after the placement wins, then the
/// one with the most free vCPUs, then the first by name. Filling the emptiest host first keeps headroom everywhere, which is
/// what a failover spends.</para>
/// <para><b>N+1.</b> After a placement, the VMs of any one up or draining host must be restartable on the other up hosts by
/// <see cref="PlanFailover"/> (largest first, spread). Checking that by replaying every host's failover is O(hosts x VMs) per
/// placement; instead each placement makes one O(hosts) pass over the per-host sums the cluster keeps, and decides per
/// candidate in O(1) with two tests. (1) Necessary, RAM and vCPUs alike: host f's used amount must not exceed the free amount
/// of the others, used_f + free_f &lt;= total free; the candidate's own term becomes its capacity, so the test is
/// max(largest term, candidate capacity) &lt;= total free - VM. (2) Sufficient: with S the componentwise largest VM, a host h
/// has k_h = min(freeRam_h / S.ram, freeVcpus_h / S.vcpus) slots; any largest-first any-fit restart fills every slot before it
/// can fail (each VM is at most S), so n_f &lt;= sum of k over the other hosts guarantees host f's restart. Kept as
/// max_f(n_f + k_f) &lt;= K, it needs only K and the two largest n_f + k_f (the second when the candidate holds the first).
/// Exact for one VM size; when it is inconclusive (mixed sizes near full) the failovers it cannot vouch for are replayed,
/// within <see cref="SchedulerOptions.NPlusOneCheckBudget"/>.</para>
/// </remarks>
public static partial class Scheduler
{
    internal enum NPlusOneMode
    {
        /// <summary>Only hosts that keep N+1; refuse otherwise.</summary>
        Require,

        /// <summary>Hosts that keep N+1 first; else the best host that fits, flagged.</summary>
        Prefer,

        /// <summary>The best host that fits (failover: the N+1 reserve is what it spends).</summary>
        Ignore,
    }

    /// <summary>
    /// Chooses a CPU server for a new or restarted VM; see the class remarks for the rules. Does not change
    /// <paramref name="cluster"/>. O(hosts) when N+1 holds by the fast tests.
    /// </summary>
    public static VmPlacement PlaceVm(PlacementRequest request, Cluster cluster)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(cluster);
        var excluded = ExcludedIndices(cluster, request.ExcludedHosts);
        var (placement, _) = Place(
            cluster, request.VmName, request.RamMiB, request.Vcpus, excluded,
            request.AllowBreakingNPlusOne ? NPlusOneMode.Prefer : NPlusOneMode.Require);
        return placement;
    }

    internal static int[] ExcludedIndices(Cluster cluster, IReadOnlyCollection<string>? names)
    {
        if (names is null || names.Count == 0)
            return [];
        var result = new List<int>(names.Count);
        foreach (var name in names)
        {
            if (cluster.TryHostIndex(name, out var i))
                result.Add(i);
        }
        return [.. result];
    }

    /// <summary>The placement and the chosen host's index (-1 when refused).</summary>
    internal static (VmPlacement Placement, int Host) Place(
        Cluster cluster, string vmName, long ram, int vcpus, int[] excluded, NPlusOneMode mode)
    {
        var n = cluster.HostCount;
        var best = -1;
        var fitting = 0;
        for (var i = 0; i < n; i++)
        {
            if (!Fits(cluster, i, ram, vcpus, excluded))
                continue;
            fitting++;
            if (best < 0 || Better(cluster, i, best))
                best = i;
        }

        if (best < 0)
        {
            var rejections = new List<ServerRejection>(n);
            for (var i = 0; i < n; i++)
                rejections.Add(new ServerRejection(cluster.Hosts[i].Name, FitFailure(cluster, i, ram, vcpus, excluded)));
            var reason = n == 0 ? "no CPU servers" : $"no host has {ram} MiB and {vcpus} vCPUs free";
            return (new VmPlacement(vmName, null, reason, false, rejections), -1);
        }

        if (mode == NPlusOneMode.Ignore)
            return (Chosen(cluster, vmName, best, ram, vcpus, "the most headroom", false, []), best);

        var check = new NPlusOneCheck(cluster, ram, vcpus);
        var budget = cluster.Options.NPlusOneCheckBudget;
        var failure = check.Failure(best, vmName, ref budget);
        if (failure is null)
            return (Chosen(cluster, vmName, best, ram, vcpus, "the most headroom", false, []), best);

        // The best host breaks N+1: try the others in order of preference. Sorting only here keeps the common path O(hosts).
        var order = new int[fitting];
        var k = 0;
        for (var i = 0; i < n; i++)
        {
            if (Fits(cluster, i, ram, vcpus, excluded))
                order[k++] = i;
        }
        Array.Sort(order, (a, b) => Better(cluster, a, b) ? -1 : Better(cluster, b, a) ? 1 : 0);
        var broken = new List<ServerRejection>(fitting) { new(cluster.Hosts[best].Name, failure) };
        for (var j = 1; j < order.Length; j++)
        {
            var candidate = order[j];
            var why = check.Failure(candidate, vmName, ref budget);
            if (why is null)
            {
                return (Chosen(
                    cluster, vmName, candidate, ram, vcpus,
                    "the most headroom among the hosts that keep N+1", false, broken), candidate);
            }
            broken.Add(new ServerRejection(cluster.Hosts[candidate].Name, why));
        }

        if (mode == NPlusOneMode.Prefer)
        {
            return (Chosen(
                cluster, vmName, best, ram, vcpus,
                "the most headroom; N+1 is broken (no host keeps it; allowed by the request)", true, broken), best);
        }

        var all = new List<ServerRejection>(n);
        for (var i = 0; i < n; i++)
        {
            if (!Fits(cluster, i, ram, vcpus, excluded))
                all.Add(new ServerRejection(cluster.Hosts[i].Name, FitFailure(cluster, i, ram, vcpus, excluded)));
        }
        all.AddRange(broken);
        all.Sort(static (a, b) => string.CompareOrdinal(a.Server, b.Server));
        return (new VmPlacement(
            vmName, null,
            $"placing {vmName} would break N+1 on every host it fits ({fitting}): the VMs of some CPU server could no longer all restart elsewhere",
            true, all), -1);
    }

    private static VmPlacement Chosen(
        Cluster cluster, string vmName, int host, long ram, int vcpus, string rule, bool breaks, List<ServerRejection> rejections)
    {
        var name = cluster.Hosts[host].Name;
        var reason = $"{name}: {rule}: {cluster.FreeRam(host) - ram} MiB and {cluster.FreeVcpus(host) - vcpus} vCPUs free after placement";
        return new VmPlacement(vmName, name, reason, breaks, rejections);
    }

    internal static bool Fits(Cluster cluster, int host, long ram, int vcpus, int[] excluded)
        => cluster.HostStates[host] == ServerState.Up
            && cluster.FreeRam(host) >= ram
            && cluster.FreeVcpus(host) >= vcpus
            && Array.IndexOf(excluded, host) < 0;

    /// <summary>The spread rule: more free RAM, then more free vCPUs, then the lower index (name order).</summary>
    internal static bool Better(Cluster cluster, int a, int b)
    {
        var ra = cluster.FreeRam(a);
        var rb = cluster.FreeRam(b);
        if (ra != rb)
            return ra > rb;
        var ca = cluster.FreeVcpus(a);
        var cb = cluster.FreeVcpus(b);
        if (ca != cb)
            return ca > cb;
        return a < b;
    }

    private static string FitFailure(Cluster cluster, int i, long ram, int vcpus, int[] excluded)
    {
        var h = cluster.Hosts[i];
        var state = cluster.HostStates[i];
        if (state != ServerState.Up)
            return state == ServerState.Down ? "down" : "draining";
        if (Array.IndexOf(excluded, i) >= 0)
            return "excluded by the request";
        var freeRam = cluster.FreeRam(i);
        var freeVcpus = cluster.FreeVcpus(i);
        var ramShort = freeRam < ram;
        var cpuShort = freeVcpus < vcpus;
        var ramText = $"{freeRam} MiB free, {ram} needed";
        var cpuText = $"{freeVcpus} vCPUs free ({h.Cpus} cores x {cluster.Options.CpuOvercommit}), {vcpus} needed";
        return ramShort && cpuShort ? $"{ramText}; {cpuText}" : ramShort ? ramText : cpuText;
    }
}
