using XenAoe.Aoe;
using XenAoe.Block;
using XenAoe.Initiator;
using XenAoe.Mirror;

namespace XenAoe.Agents.Host;

public sealed class MirrorDataPathOptions
{
    /// <summary>Storage NICs of this CPU server; every one is a path to every leg.</summary>
    public required IReadOnlyList<string> Interfaces { get; init; }

    /// <summary>The two legs: distinct AoE addresses on two different disk servers.</summary>
    public required IReadOnlyList<AoeAddress> Legs { get; init; }

    /// <summary>Assemble with one leg when the other does not answer (the caller knows the present leg is current).</summary>
    public bool AllowDegraded { get; init; }

    /// <summary>Force-set the reservation even if another host holds it: only once that host is known dead or fenced.</summary>
    public bool TakeOver { get; init; }

    public MirrorOptions Mirror { get; init; } = new();

    /// <summary>How often a failed leg is probed to be taken back.</summary>
    public TimeSpan LegRetryInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>A path silent this long is dropped (its frames move to other paths).</summary>
    public TimeSpan PathTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A leg with no answering path this long fails its I/O, and the mirror drops it: this is how long a disk server's death
    /// stalls the VM's writes. Short, because a false alarm costs only a bitmap-limited resync.
    /// </summary>
    public TimeSpan DeviceTimeout { get; init; } = TimeSpan.FromSeconds(1.5);

    public Action<string> Log { get; init; } = _ => { };
}

/// <summary>
/// One VM disk on a CPU server: the AoE initiator, both legs reserved for this host, and the RAID1 mirror over them. A leg that
/// failed is probed every <see cref="MirrorDataPathOptions.LegRetryInterval"/> and taken back (bitmap resync) when it answers.
/// </summary>
public sealed class MirrorDataPath : IAsyncDisposable
{
    private readonly MirrorDataPathOptions _options;
    private readonly AoeInitiator _initiator;
    private readonly CancellationTokenSource _stopping = new();
    private Task _rejoin = Task.CompletedTask;

    private readonly AoeDevice?[] _devices;

    /// <summary>The legs' current addresses: <see cref="MirrorDataPathOptions.Legs"/> until a leg is replaced.</summary>
    private readonly AoeAddress[] _addresses;

    private MirrorDataPath(MirrorDataPathOptions options, AoeInitiator initiator, AoeDevice?[] devices, Mirror.Mirror mirror)
    {
        _options = options;
        _initiator = initiator;
        _devices = devices;
        _addresses = [.. options.Legs];
        Mirror = mirror;
    }

    public Mirror.Mirror Mirror { get; }

    /// <summary>The legs' addresses, index for index; a replaced leg shows its new volume.</summary>
    public IReadOnlyList<AoeAddress> Legs => _addresses;

    /// <summary>Each leg's paths as the initiator sees them, index for index; a leg that is not open has none.</summary>
    public IReadOnlyList<IReadOnlyList<AoePathInfo>> LegPaths => [.. _devices.Select(d => d?.Paths ?? [])];

    /// <summary>Formats both legs as a new mirror (destroys their contents) and returns it running.</summary>
    public static Task<MirrorDataPath> CreateAsync(MirrorDataPathOptions options, bool assumeClean, CancellationToken ct = default) =>
        StartAsync(options, async (legs, names) =>
        {
            if (legs.Any(l => l is null))
                throw new MirrorAssemblyException("a new mirror needs both legs present");
            return await XenAoe.Mirror.Mirror.CreateAsync(legs[0]!, legs[1]!, options.Mirror, assumeClean, names[0], names[1], ct).ConfigureAwait(false);
        }, ct);

    /// <summary>Assembles an existing mirror from its legs' metadata.</summary>
    public static Task<MirrorDataPath> OpenAsync(MirrorDataPathOptions options, CancellationToken ct = default) =>
        StartAsync(options, (legs, names) =>
            XenAoe.Mirror.Mirror.AssembleAsync(legs[0], legs[1], options.Mirror, options.AllowDegraded, names[0], names[1], ct), ct);

    /// <summary>
    /// The migration destination's half: opens both legs and joins their reservations (this host's MACs beside the source's),
    /// without reading or writing the mirror, which the source still runs. <see cref="MirrorDataPathStandby.ActivateAsync"/>
    /// assembles it once the source has closed it.
    /// </summary>
    public static async Task<MirrorDataPathStandby> PrepareIncomingAsync(MirrorDataPathOptions options, CancellationToken ct = default)
    {
        var (initiator, legs) = await OpenLegsAsync(options, ReservationClaim.Join, ct).ConfigureAwait(false);
        return new MirrorDataPathStandby(options, initiator, legs);
    }

    private static async Task<MirrorDataPath> StartAsync(MirrorDataPathOptions options,
        Func<IBlockDevice?[], string[], Task<Mirror.Mirror>> build, CancellationToken ct)
    {
        var (initiator, legs) = await OpenLegsAsync(options, ReservationClaim.Exclusive, ct).ConfigureAwait(false);
        return await AssembleAsync(options, initiator, legs, build).ConfigureAwait(false);
    }

    internal static async Task<MirrorDataPath> AssembleAsync(MirrorDataPathOptions options, AoeInitiator initiator, AoeDevice?[] legs,
        Func<IBlockDevice?[], string[], Task<Mirror.Mirror>> build)
    {
        try
        {
            var mirror = await build(legs, [.. options.Legs.Select(l => l.ToString())]).ConfigureAwait(false);
            var path = new MirrorDataPath(options, initiator, legs, mirror);
            path._rejoin = Task.Run(path.RejoinLoopAsync);
            return path;
        }
        catch
        {
            await CloseLegsAsync(initiator, legs).ConfigureAwait(false);
            throw;
        }
    }

    private static async Task<(AoeInitiator, AoeDevice?[])> OpenLegsAsync(MirrorDataPathOptions options, ReservationClaim claim, CancellationToken ct)
    {
        if (options.Legs.Count != 2 || options.Legs[0] == options.Legs[1])
            throw new ArgumentException("a mirror needs two distinct leg addresses (one per disk server)");
        var initiator = await AoeInitiator.StartAsync(new AoeInitiatorOptions
        {
            Interfaces = options.Interfaces,
            PathTimeout = options.PathTimeout,
            DeviceTimeout = options.DeviceTimeout,
        }, ct).ConfigureAwait(false);
        var legs = new AoeDevice?[2];
        try
        {
            for (var i = 0; i < 2; i++)
                legs[i] = await OpenLegAsync(initiator, options, options.Legs[i], claim, ct).ConfigureAwait(false);
            return (initiator, legs);
        }
        catch
        {
            await CloseLegsAsync(initiator, legs).ConfigureAwait(false);
            throw;
        }
    }

    internal static async Task CloseLegsAsync(AoeInitiator initiator, AoeDevice?[] legs)
    {
        foreach (var leg in legs)
        {
            if (leg is not null)
                await leg.DisposeAsync().ConfigureAwait(false);
        }
        await initiator.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Opens a leg and takes its reservation for this host's MACs; null when it does not answer (degraded assembly decides).</summary>
    private static async Task<AoeDevice?> OpenLegAsync(AoeInitiator initiator, MirrorDataPathOptions options, AoeAddress address,
        ReservationClaim claim, CancellationToken ct)
    {
        AoeDevice device;
        try
        {
            device = await initiator.OpenAsync(address, ct).ConfigureAwait(false);
        }
        catch (TimeoutException e)
        {
            options.Log($"leg {address} does not answer: {e.Message}");
            return null;
        }
        try
        {
            await ClaimAsync(device, options, claim, ct).ConfigureAwait(false);
            return device;
        }
        catch
        {
            await device.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// The AoE reservation is the fence: only the listed MACs may read or write. <see cref="ReservationClaim.Exclusive"/> takes
    /// it when free or already ours, and refuses when another host holds it unless <see cref="MirrorDataPathOptions.TakeOver"/>
    /// (the controller, after declaring the holder dead; a migration destination, once the source closed the mirror): then
    /// this host's MACs alone are force-set, which fences every other host. <see cref="ReservationClaim.Join"/> adds this
    /// host's MACs to the holders (a migration destination while the source still runs).
    /// </summary>
    internal static async Task ClaimAsync(AoeDevice device, MirrorDataPathOptions options, ReservationClaim claim, CancellationToken ct)
    {
        var ours = device.LocalMacs;
        IReadOnlyList<MacAddress> holders;
        try
        {
            holders = await device.ReadReservationAsync(ct).ConfigureAwait(false);
        }
        catch (AoeCommandException e) when (e.Error == AoeError.UnrecognizedCommand)
        {
            options.Log($"warning: {device.Address} does not implement AoE reserve/release (vblade, for one): this leg cannot be fenced");
            return;
        }
        if (claim == ReservationClaim.Join)
        {
            if (ours.All(holders.Contains))
                return;
            await device.SetReservationAsync([.. holders.Union(ours)], force: true, ct).ConfigureAwait(false);
            options.Log($"leg {device.Address} joined by {string.Join(", ", ours)} beside {string.Join(", ", holders)}");
            return;
        }
        if (holders.Count != 0 && !holders.Any(ours.Contains) && !options.TakeOver)
        {
            throw new MirrorAssemblyException($"{device.Address} is reserved by {string.Join(", ", holders)}: another host owns this disk. " +
                "Take it over only if that host is dead or fenced.");
        }
        if (holders.Count == ours.Count && holders.All(ours.Contains))
            return;
        await device.SetReservationAsync(ours, force: holders.Count != 0, ct).ConfigureAwait(false);
        options.Log($"leg {device.Address} reserved for {string.Join(", ", ours)}");
    }

    /// <summary>Removes this host's MACs from a reservation it joined; best effort (the leg may be gone).</summary>
    internal static async Task LeaveAsync(AoeDevice device, MirrorDataPathOptions options, CancellationToken ct)
    {
        try
        {
            var holders = await device.ReadReservationAsync(ct).ConfigureAwait(false);
            var rest = holders.Except(device.LocalMacs).ToArray();
            if (rest.Length != holders.Count)
                await device.SetReservationAsync(rest, force: true, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or TimeoutException)
        {
            options.Log($"leg {device.Address}: could not leave its reservation: {e.Message}");
        }
    }

    /// <summary>
    /// Takes failed legs back. The initiator keeps probing a silent target's paths, so the same device recovers when its disk server
    /// returns; re-adding reads the leg's superblock, which fails (and is retried next tick) until the target answers again.
    /// </summary>
    private async Task RejoinLoopAsync()
    {
        using var timer = new PeriodicTimer(_options.LegRetryInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token).ConfigureAwait(false))
            {
                foreach (var leg in Mirror.Status.Legs.Where(l => l.State == LegState.Failed))
                    await TryRejoinAsync(leg.Index).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    private async Task TryRejoinAsync(int index)
    {
        var address = _addresses[index];
        try
        {
            _devices[index] ??= await OpenLegAsync(_initiator, _options, address, ReservationClaim.Exclusive, _stopping.Token).ConfigureAwait(false);
            if (_devices[index] is not { } device)
                return;
            await ClaimAsync(device, _options, ReservationClaim.Exclusive, _stopping.Token).ConfigureAwait(false);
            await Mirror.ReaddLegAsync(index, device, _stopping.Token).ConfigureAwait(false);
            _options.Log($"leg {address} is back: resyncing {Mirror.Status.DirtyRegions} dirty regions");
        }
        catch (Exception e) when (e is IOException or TimeoutException)
        {
            // Still away (BlockDeviceException and AoeCommandException are IOExceptions): next tick.
        }
        catch (MirrorAssemblyException e)
        {
            _options.Log($"leg {address} answers but cannot rejoin: {e.Message}");
        }
    }

    /// <summary>
    /// Replaces leg <paramref name="index"/> by the volume at <paramref name="address"/> (usually on a third disk server): it is
    /// reserved for this host and filled from the in-sync leg in the background (<see cref="Mirror.Mirror.Status"/> shows progress).
    /// </summary>
    public async Task ReplaceLegAsync(int index, AoeAddress address, CancellationToken ct = default)
    {
        if (index is not (0 or 1))
            throw new ArgumentOutOfRangeException(nameof(index), index, "a mirror has legs 0 and 1");
        if (_addresses.Contains(address))
            throw new ArgumentException($"{address} is already a leg of this mirror");
        var device = await OpenLegAsync(_initiator, _options, address, ReservationClaim.Exclusive, ct).ConfigureAwait(false)
            ?? throw new TimeoutException($"the new leg {address} does not answer");
        try
        {
            await Mirror.ReplaceLegAsync(index, device, address.ToString(), ct).ConfigureAwait(false);
        }
        catch
        {
            await device.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        _devices[index] = device;
        _addresses[index] = address;
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _rejoin.ConfigureAwait(false);
        await Mirror.DisposeAsync().ConfigureAwait(false);
        await _initiator.DisposeAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }
}

internal enum ReservationClaim
{
    Exclusive,
    Join,
}

/// <summary>
/// A migration destination's legs, opened and joined to their reservations while the source still runs the mirror. Nothing is
/// read or written until <see cref="ActivateAsync"/>; disposing it unactivated (a failed migration) leaves the reservations.
/// </summary>
public sealed class MirrorDataPathStandby : IAsyncDisposable
{
    private static readonly TimeSpan HandoverClaimTimeout = TimeSpan.FromMilliseconds(300);

    private readonly MirrorDataPathOptions _options;
    private readonly AoeInitiator _initiator;
    private readonly AoeDevice?[] _legs;
    private bool _handedOver;

    internal MirrorDataPathStandby(MirrorDataPathOptions options, AoeInitiator initiator, AoeDevice?[] legs)
    {
        _options = options;
        _initiator = initiator;
        _legs = legs;
    }

    /// <summary>
    /// A read-only view of the disk as the current leg holds it, for the hypervisor's start-up probes while the source still
    /// runs the mirror (see <see cref="Mirror.Mirror.OpenPreviewAsync"/>).
    /// </summary>
    public Task<IBlockDevice> OpenPreviewAsync(CancellationToken ct = default) =>
        XenAoe.Mirror.Mirror.OpenPreviewAsync(_legs[0], _legs[1], _options.Legs[0].ToString(), _options.Legs[1].ToString(), ct);

    /// <summary>
    /// Call once the source has closed the mirror (its superblocks say clean): takes both reservations for this host alone (the
    /// source is fenced from here on) and assembles the mirror. The standby is used up, whatever the outcome.
    /// </summary>
    public async Task<MirrorDataPath> ActivateAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_handedOver, this);
        _handedOver = true;
        var options = new MirrorDataPathOptions
        {
            Interfaces = _options.Interfaces, Legs = _options.Legs, AllowDegraded = _options.AllowDegraded, TakeOver = true,
            Mirror = _options.Mirror, LegRetryInterval = _options.LegRetryInterval, PathTimeout = _options.PathTimeout,
            DeviceTimeout = _options.DeviceTimeout, Log = _options.Log,
        };
        // A disk server that died during the migration is left out: the source dropped its leg (the survivor's epoch says so)
        // or closed both legs identical, so the answering leg is current, and the rejoin loop takes the other back later. The
        // guest's I/O waits for this, so a leg gets HandoverClaimTimeout to answer (a live one takes about a millisecond) rather
        // than the full leg timeout; both are asked at once.
        var usable = new AoeDevice?[_legs.Length];
        await Task.WhenAll(_legs.Select(async (leg, i) =>
        {
            if (leg is null)
                return;
            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
            bounded.CancelAfter(HandoverClaimTimeout);
            try
            {
                await MirrorDataPath.ClaimAsync(leg, options, ReservationClaim.Exclusive, bounded.Token).ConfigureAwait(false);
                usable[i] = leg;
            }
            catch (Exception e) when (e is IOException or TimeoutException || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                options.Log($"leg {leg.Address} does not answer at the hand-over ({e.Message}): assembling without it");
            }
        })).ConfigureAwait(false);
        if (usable.All(l => l is null))
        {
            await MirrorDataPath.CloseLegsAsync(_initiator, _legs).ConfigureAwait(false);
            throw new MirrorAssemblyException($"no leg of {string.Join(" + ", _options.Legs)} answers at the hand-over");
        }
        return await MirrorDataPath.AssembleAsync(options, _initiator, _legs, (_, names) =>
            XenAoe.Mirror.Mirror.AssembleAsync(usable[0], usable[1], options.Mirror, allowDegraded: true, names[0], names[1], ct)).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_handedOver)
            return;
        _handedOver = true;
        foreach (var leg in _legs)
        {
            if (leg is not null)
                await MirrorDataPath.LeaveAsync(leg, _options, CancellationToken.None).ConfigureAwait(false);
        }
        await MirrorDataPath.CloseLegsAsync(_initiator, _legs).ConfigureAwait(false);
    }
}
