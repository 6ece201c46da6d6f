namespace XenAoe.Control.Scheduling;

public static partial class Scheduler
{
    /// <summary>
    /// Plans moving every VM off <paramref name="host"/> (maintenance): the host counts as draining, its VMs are placed largest
    /// first, each as <see cref="PlaceVm"/> would, each assuming the moves before it. VMs that find no host are reported with
    /// the refusal and left where they are. With <paramref name="keepNPlusOne"/> (the default) a move that would break N+1 is
    /// refused. Does not change <paramref name="cluster"/>.
    /// </summary>
    public static MovePlan PlanEvacuation(string host, Cluster cluster, bool keepNPlusOne = true)
        => PlanMoves(host, cluster, ServerState.Draining, keepNPlusOne ? NPlusOneMode.Require : NPlusOneMode.Ignore, "evacuating");

    /// <summary>
    /// Plans restarting every VM of the dead <paramref name="deadHost"/> on the up hosts, largest first, by the spread rule.
    /// N+1 is not required here: the headroom N+1 kept is what a failover spends (placements that kept N+1 guarantee this
    /// plan is complete). VMs that find no host are reported with the refusal. Does not change <paramref name="cluster"/>.
    /// </summary>
    public static MovePlan PlanFailover(string deadHost, Cluster cluster)
        => PlanMoves(deadHost, cluster, ServerState.Down, NPlusOneMode.Ignore, "failing over");

    private static MovePlan PlanMoves(string host, Cluster cluster, ServerState state, NPlusOneMode mode, string verb)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        var work = cluster.Clone();
        var from = work.HostIndexOrThrow(host);
        work.SetHostState(host, state);

        var list = work.HostVms[from];
        var vms = new int[list.Count];
        list.CopyTo(vms);
        Array.Sort(vms, (a, b) =>
        {
            var x = work.Vms[a]!;
            var y = work.Vms[b]!;
            return LargestFirst((x.RamMiB, x.Vcpus, x.Name), (y.RamMiB, y.Vcpus, y.Name));
        });

        var moves = new List<VmMove>(vms.Length);
        var unplaced = new List<UnplacedVm>();
        int[] excluded = [from];
        foreach (var vm in vms)
        {
            var demand = work.Vms[vm]!;
            // Off its host while it is placed, so a draining host's N+1 term does not count it twice.
            work.Unassign(vm);
            var (placement, to) = Place(work, demand.Name, demand.RamMiB, demand.Vcpus, excluded, mode);
            if (to < 0)
            {
                work.Assign(vm, from);
                unplaced.Add(new UnplacedVm(demand.Name, placement));
                continue;
            }
            work.Assign(vm, to);
            moves.Add(new VmMove(demand.Name, host, placement.Host!, placement.Reason));
        }

        var reason = unplaced.Count == 0
            ? $"{verb} {host}: all {moves.Count} VMs have a destination"
            : $"{verb} {host}: {unplaced.Count} of {vms.Length} VMs have no destination: "
                + string.Join(", ", unplaced.Select(static u => u.VmName));
        return new MovePlan(host, moves, unplaced, reason);
    }

    /// <summary>
    /// How many more VMs of <paramref name="size"/> fit, placed one after another by <see cref="PlaceVm"/>'s rules, while
    /// keeping N+1 and without it; the mirrored disks that fit; and every host's headroom. The seed guide's sum (two 32 GiB
    /// CPU servers hold 64 VMs of 1 GiB) is the figure without N+1; keeping N+1 halves it on two hosts. Does not change
    /// <paramref name="cluster"/>.
    /// </summary>
    public static CapacityReport Capacity(VmSize size, Cluster cluster)
    {
        ArgumentNullException.ThrowIfNull(size);
        ArgumentNullException.ThrowIfNull(cluster);
        if (size.RamMiB < 0 || size.Vcpus < 0 || size.DiskBytes < 0 || (size.RamMiB == 0 && size.Vcpus == 0))
            throw new ArgumentOutOfRangeException(nameof(size), "A VM size needs RAM or vCPUs, and no negative figure.");

        var keeping = CountPlacements(cluster, size, NPlusOneMode.Require);
        var without = CountPlacements(cluster, size, NPlusOneMode.Ignore);
        int? disks = null;
        if (size.DiskBytes > 0)
        {
            var work = cluster.Clone();
            var count = 0;
            while (count < without)
            {
                var legs = PlaceMirrorLegs(size.DiskBytes, work);
                if (!legs.Placed || !legs.DomainsSeparated)
                    break;
                work.ReserveMirror(legs, size.DiskBytes);
                count++;
            }
            disks = count;
        }
        return new CapacityReport(size, keeping, without, disks, cluster.Headroom());
    }

    private static int CountPlacements(Cluster cluster, VmSize size, NPlusOneMode mode)
    {
        var work = cluster.Clone();
        var probe = new VmDemand("(capacity probe)", size.Vcpus, size.RamMiB, null);
        var count = 0;
        while (true)
        {
            var (_, host) = Place(work, probe.Name, size.RamMiB, size.Vcpus, [], mode);
            if (host < 0)
                return count;
            work.AddProbe(probe, host);
            count++;
        }
    }
}
