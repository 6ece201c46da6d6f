using System.Runtime.InteropServices;
using XenAoe.Aoe;
using XenAoe.Block;

namespace XenAoe.Initiator;

/// <summary>Callbacks from a device to the initiator that owns it.</summary>
internal interface IDeviceHost
{
    /// <summary>Work was queued: the retransmission timer should tick fast.</summary>
    void Wake();

    void Closed(AoeDevice device);
}

/// <summary>
/// One AoE target (shelf.slot) as a block device, reached over every path the initiator learned for it. Requests of any size
/// are cut into LBA48 READ/WRITE SECTORS EXT frames of the size each path carries, spread over the paths with room in their
/// congestion windows, and retransmitted (on another path when there is one) when their retransmission timeout passes.
/// Thread-safe: any number of requests may be in flight from any threads. Completions run asynchronously, never on the
/// initiator's receive threads.
/// </summary>
/// <remarks>
/// Failure mapping: ATA status ERR with IDNF or ABRT is <see cref="BlockError.Invalid"/>, with UNC (or anything else)
/// <see cref="BlockError.Io"/>; AoE error 6 (target reserved by another host: fencing) is <see cref="BlockError.NotPermitted"/>
/// at once, never retried; other AoE errors are <see cref="BlockError.Io"/>; no answer on any path for
/// <see cref="AoeInitiatorOptions.DeviceTimeout"/> is <see cref="BlockError.Io"/>.
/// </remarks>
public sealed partial class AoeDevice : IBlockDevice
{
    private static readonly ReadOnlyMemory<byte> Zeros = new byte[1 << 20];

    private readonly IoRequestPool _pool = new();
    private readonly IDeviceHost? _host;

    private readonly IReadOnlyList<MacAddress>? _localMacs;

    /// <param name="localMacs">The MACs of every NIC of the initiator; null (tests) takes those of the paths.</param>
    internal AoeDevice(AoeAddress address, AoeInitiatorOptions options, IDeviceHost? host, uint seed, IReadOnlyList<MacAddress>? localMacs = null)
    {
        Address = address;
        _localMacs = localMacs;
        _options = options;
        _time = options.Time;
        _host = host;
        _tags = new TagTable(TagTable.MaxCapacity, seed);
        _frames = new FrameSlot[_tags.Capacity];
        _nextControlTag = seed * 2654435761u;
        _pathTimeout = Stamp(options.PathTimeout);
        _deviceTimeout = Stamp(options.DeviceTimeout);
        _probeInterval = Stamp(options.ProbeInterval);
        _controlRetry = Stamp(options.ControlRetryInterval);
        _lastProgress = _time.GetTimestamp();
    }

    public AoeAddress Address { get; }

    /// <summary>Size in bytes, from IDENTIFY DEVICE (words 100-103 when LBA48 is supported, else 60-61).</summary>
    public long Size { get; internal set; }

    /// <summary>False: a read-only target refuses writes with ATA ABRT, which surfaces as <see cref="BlockError.Invalid"/>.</summary>
    public bool ReadOnly => false;

    /// <summary>Model string from IDENTIFY DEVICE.</summary>
    public string Model { get; private set; } = "";

    /// <summary>Serial number from IDENTIFY DEVICE.</summary>
    public string SerialNumber { get; private set; } = "";

    /// <summary>A snapshot of every path, in the order they were learned.</summary>
    public IReadOnlyList<AoePathInfo> Paths
    {
        get
        {
            lock (_lock)
            {
                var now = _time.GetTimestamp();
                return [.. _paths.Select(p => p.Snapshot(_time, now))];
            }
        }
    }

    /// <summary>
    /// The MACs of every NIC this initiator uses (not only those with a path now): what a reservation or MAC mask must list for
    /// this host to keep access on every path, including one that appears later. A path whose NIC is not listed in a
    /// reservation gets AoE error 6, and the request that used it fails with <see cref="BlockError.NotPermitted"/>.
    /// </summary>
    public IReadOnlyList<MacAddress> LocalMacs
    {
        get
        {
            if (_localMacs is not null)
                return _localMacs;
            lock (_lock)
                return [.. _paths.Select(p => p.Port.Mac).Distinct()];
        }
    }

    public AoeDeviceStatistics Statistics
    {
        get
        {
            lock (_lock)
            {
                return new AoeDeviceStatistics(_readRequests, _writeRequests, _flushRequests, _failedRequests, _sectorsRead, _sectorsWritten,
                    _framesSent, _retransmissions, _timeouts, _replies, _staleReplies, _errorReplies);
            }
        }
    }

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken ct = default)
    {
        if (!Check(offset, buffer.Length, out var invalid))
            return ValueTask.FromException(invalid);
        return buffer.Length == 0 ? ValueTask.CompletedTask : Submit(IoKind.Read, offset, buffer, ct);
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool forceUnitAccess = false, CancellationToken ct = default)
    {
        if (!Check(offset, data.Length, out var invalid))
            return ValueTask.FromException(invalid);
        // The engine only ever reads a write's buffer.
        var write = data.Length == 0 ? ValueTask.CompletedTask : Submit(IoKind.Write, offset, MemoryMarshal.AsMemory(data), ct);
        return forceUnitAccess ? WriteThenFlushAsync(write, ct) : write;
    }

    /// <summary>FLUSH CACHE EXT: completes when the target reports every completed write durable.</summary>
    public ValueTask FlushAsync(CancellationToken ct = default) => Submit(IoKind.Flush, 0, Memory<byte>.Empty, ct);

    /// <summary>Writes zeros: AoE has no WRITE ZEROES, so this writes a shared zero buffer, up to 8 MiB in flight.</summary>
    public async ValueTask WriteZeroesAsync(long offset, long length, CancellationToken ct = default)
    {
        if (!Check(offset, length, out var invalid))
            throw invalid;
        var inFlight = new List<Task>(8);
        for (long done = 0; done < length; done += Zeros.Length)
        {
            if (inFlight.Count == 8)
            {
                await inFlight[0].ConfigureAwait(false);
                inFlight.RemoveAt(0);
            }
            var chunk = (int)Math.Min(Zeros.Length, length - done);
            inFlight.Add(WriteAsync(offset + done, Zeros[..chunk], false, ct).AsTask());
        }
        await Task.WhenAll(inFlight).ConfigureAwait(false);
    }

    /// <summary>AoE has no TRIM: the range is checked and the call does nothing (allowed, as trim is advisory).</summary>
    public ValueTask TrimAsync(long offset, long length, CancellationToken ct = default) =>
        Check(offset, length, out var invalid) ? ValueTask.CompletedTask : ValueTask.FromException(invalid);

    /// <summary>Fails requests still in flight with <see cref="ObjectDisposedException"/> and stops using the paths.</summary>
    public ValueTask DisposeAsync()
    {
        Close(new ObjectDisposedException(ToString()));
        _host?.Closed(this);
        return ValueTask.CompletedTask;
    }

    public override string ToString() => $"AoE {Address}";

    private async ValueTask WriteThenFlushAsync(ValueTask write, CancellationToken ct)
    {
        await write.ConfigureAwait(false);
        // AoE has no FUA write: a flush after the write gives the same guarantee.
        await FlushAsync(ct).ConfigureAwait(false);
    }

    private bool Check(long offset, long length, out BlockDeviceException error)
    {
        error = null!;
        if (BlockRange.IsValid(offset, length, Size))
            return true;
        error = BlockRange.Invalid(ToString(), offset, length, Size);
        return false;
    }
}
