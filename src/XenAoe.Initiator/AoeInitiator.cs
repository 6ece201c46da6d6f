using System.Security.Cryptography;
using XenAoe.Aoe;
using XenAoe.Net;

namespace XenAoe.Initiator;

/// <summary>
/// A userland AoE initiator over raw Ethernet: discovers targets, opens them as <see cref="AoeDevice"/>s and runs their I/O.
/// </summary>
/// <remarks>
/// <para>
/// Threads: one dedicated receive thread per NIC, blocking in recvmmsg (PacketSocket.Receive with MSG_WAITFORONE: one syscall
/// per batch of up to BatchSize replies, no epoll hop); it completes frames by tag and sends the frames their completion made
/// room for in one sendmmsg per NIC per batch. A TimeProvider timer ticks every millisecond while requests are active (every
/// 20 ms otherwise) for retransmissions, path health, probes and timeouts. Callers' threads submit and send their first frames
/// directly. Continuations of completed requests run on the thread pool, never on these threads.
/// </para>
/// <para>
/// Tags all have bit 31 set: the Linux aoe driver ignores such replies, so it and this initiator can share a host and a NIC.
/// </para>
/// </remarks>
public sealed class AoeInitiator : IAsyncDisposable, IDeviceHost
{
    private static readonly TimeSpan BusyTick = TimeSpan.FromMilliseconds(1);
    private static readonly TimeSpan IdleTick = TimeSpan.FromMilliseconds(20);

    /// <summary>After the first answer to an open's directed query, how long to wait for the target's other NICs to answer.</summary>
    private static readonly TimeSpan PathGrace = TimeSpan.FromMilliseconds(50);

    private readonly AoeInitiatorOptions _options;
    private readonly TimeProvider _time;
    private readonly NicPort[] _ports;
    private readonly Thread[] _receivers;
    private readonly Lock _registryLock = new();
    private readonly Dictionary<AoeAddress, TargetRecord> _registry = [];
    private readonly Lock _devicesLock = new();
    private volatile Dictionary<uint, AoeDevice> _devices = [];
    private readonly ITimer _timer;
    private uint _discoveryTag = (uint)Random.Shared.Next();
    private long _nextDiscovery;
    private int _fast;
    private int _wakeups;
    private int _ticking;
    private volatile bool _stopping;

    private AoeInitiator(AoeInitiatorOptions options, NicPort[] ports)
    {
        _options = options;
        _time = options.Time;
        _ports = ports;
        _nextDiscovery = _time.GetTimestamp() + Stamp(options.DiscoveryInterval);
        _receivers = [.. ports.Select(port => new Thread(() => ReceiveLoop(port)) { IsBackground = true, Name = $"aoe-init {port.Name}" })];
        foreach (var thread in _receivers)
            thread.Start();
        _timer = _time.CreateTimer(static state => ((AoeInitiator)state!).OnTimer(), this, IdleTick, IdleTick);
    }

    /// <summary>The local NICs in use, as they were when the initiator started.</summary>
    public IReadOnlyList<NetworkInterfaceInfo> Interfaces => [.. _ports.Select(p => p.Socket.Interface)];

    /// <summary>Frames the kernel refused to send on any NIC (link down, no buffer space); they count as lost and are retransmitted.</summary>
    public long SendErrors => _ports.Sum(p => p.SendErrors);

    /// <summary>Every target heard so far (discovery replies, announcements, rediscovery), with every path it was heard on.</summary>
    public IReadOnlyList<AoeTargetInfo> Targets
    {
        get
        {
            lock (_registryLock)
                return [.. _registry.Values.OrderBy(t => t.Address.Shelf).ThenBy(t => t.Address.Slot).Select(t => t.Snapshot(long.MinValue))];
        }
    }

    /// <summary>
    /// Opens an AF_PACKET socket on each interface and starts the receive threads. The sockets belong to the network namespace
    /// of the calling thread: they are opened synchronously, before this method returns its task.
    /// </summary>
    /// <exception cref="NetworkInterfaceNotFoundException">An interface does not exist.</exception>
    /// <exception cref="PacketSocketException">A socket could not be opened (CAP_NET_RAW missing, ...).</exception>
    public static Task<AoeInitiator> StartAsync(AoeInitiatorOptions options, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        ct.ThrowIfCancellationRequested();
        var ports = new List<NicPort>();
        try
        {
            foreach (var name in options.Interfaces)
            {
                var nic = NetworkInterfaceInfo.Get(name);
                // The receive timeout is how long closing waits for the receive threads; a live migration closes the source's
                // initiators while the VM's I/O waits for the hand-over (the default 200 ms was most of it). 40 idle wake-ups a
                // second per NIC cost nothing measurable.
                var socket = PacketSocket.Open(nic, AoeProtocol.EtherType, new PacketSocketOptions
                {
                    ReceiveBufferBytes = options.ReceiveBufferBytes,
                    ReceiveTimeout = TimeSpan.FromMilliseconds(25),
                });
                ports.Add(new NicPort(ports.Count, nic, socket, options.BatchSize));
            }
        }
        catch
        {
            foreach (var port in ports)
                port.Dispose();
            throw;
        }
        return Task.FromResult(new AoeInitiator(options, [.. ports]));
    }

    /// <summary>
    /// Broadcasts a config query on every NIC and returns the targets that answered within <paramref name="wait"/>, each with
    /// every (local NIC, target MAC) pair it answered on. Announcements heard meanwhile count too.
    /// </summary>
    public async Task<IReadOnlyList<AoeTargetInfo>> DiscoverAsync(TimeSpan wait, CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_stopping, this);
        var start = _time.GetTimestamp();
        Broadcast(AoeProtocol.BroadcastShelf, AoeProtocol.BroadcastSlot);
        await Task.Delay(wait, _time, ct).ConfigureAwait(false);
        lock (_registryLock)
            return [.. _registry.Values.Where(t => t.LastSeen >= start).OrderBy(t => t.Address.Shelf).ThenBy(t => t.Address.Slot).Select(t => t.Snapshot(start))];
    }

    /// <summary>
    /// Opens target <paramref name="address"/>: queries it on every NIC to learn its paths, reads its size with IDENTIFY DEVICE,
    /// and returns it ready for I/O. Paths that answer later (another NIC of the target, a rediscovery) join the device.
    /// </summary>
    /// <exception cref="TimeoutException">No NIC got an answer within DeviceTimeout.</exception>
    /// <exception cref="InvalidOperationException">The target is already open in this initiator.</exception>
    public async Task<AoeDevice> OpenAsync(AoeAddress address, CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_stopping, this);
        if (address.IsBroadcast)
            throw new ArgumentException($"{address} is a broadcast address, not a target.", nameof(address));
        var device = new AoeDevice(address, _options, this, (uint)RandomNumberGenerator.GetInt32(int.MaxValue), [.. _ports.Select(p => p.Mac).Distinct()]);
        lock (_devicesLock)
        {
            if (_devices.ContainsKey(Key(address.Shelf, address.Slot)))
                throw new InvalidOperationException($"{address} is already open.");
            // Registered first, so config replies to the query below reach the device as well as the registry.
            _devices = new Dictionary<uint, AoeDevice>(_devices) { [Key(address.Shelf, address.Slot)] = device };
        }
        try
        {
            var start = _time.GetTimestamp();
            Broadcast(address.Shelf, address.Slot);
            var deadline = start + Stamp(_options.DeviceTimeout);
            while (!HasPathsSince(address, start))
            {
                if (_time.GetTimestamp() >= deadline)
                    throw new TimeoutException($"No AoE target {address} answered on {string.Join(", ", _ports.Select(p => p.Name))} within {_options.DeviceTimeout.TotalSeconds:0.###} s.");
                await Task.Delay(TimeSpan.FromMilliseconds(2), _time, ct).ConfigureAwait(false);
            }
            await Task.Delay(PathGrace, _time, ct).ConfigureAwait(false);
            // Paths heard before the device was registered (or whose reply raced it) are added from the registry; the round
            // trip of this query seeds each path's RTT estimator.
            lock (_registryLock)
            {
                foreach (var path in _registry[address].Paths.Where(p => p.LastSeen >= start))
                    device.AddOrUpdatePath(path.Port, path.Mac, path.SectorCount, path.BufferCount, path.LastSeen, _time.GetElapsedTime(start, path.LastSeen));
            }
            await device.IdentifyAsync(ct).ConfigureAwait(false);
            return device;
        }
        catch
        {
            await device.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private bool HasPathsSince(AoeAddress address, long start)
    {
        lock (_registryLock)
            return _registry.TryGetValue(address, out var record) && record.Paths.Any(p => p.LastSeen >= start);
    }

    /// <summary>Stops the timer and the receive threads, fails every open device's requests and closes the sockets.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stopping)
            return;
        _stopping = true;
        await _timer.DisposeAsync().ConfigureAwait(false);
        foreach (var device in _devices.Values)
            device.Close(new ObjectDisposedException(nameof(AoeInitiator)));
        foreach (var thread in _receivers)
            thread.Join(); // within the socket's receive timeout
        foreach (var port in _ports)
            port.Dispose();
    }

    void IDeviceHost.Wake()
    {
        Interlocked.Increment(ref _wakeups);
        if (Volatile.Read(ref _fast) == 0 && Interlocked.Exchange(ref _fast, 1) == 0 && !_stopping)
            _timer.Change(BusyTick, BusyTick);
    }

    void IDeviceHost.Closed(AoeDevice device)
    {
        lock (_devicesLock)
        {
            var key = Key(device.Address.Shelf, device.Address.Slot);
            if (_devices.TryGetValue(key, out var current) && current == device)
            {
                var copy = new Dictionary<uint, AoeDevice>(_devices);
                copy.Remove(key);
                _devices = copy;
            }
        }
    }

    private void OnTimer()
    {
        // System timers may overlap when a tick runs long; one tick at a time is enough.
        if (Interlocked.Exchange(ref _ticking, 1) != 0)
            return;
        try
        {
            if (_stopping)
                return;
            var wakeups = Volatile.Read(ref _wakeups);
            var now = _time.GetTimestamp();
            ulong dirty = 0;
            var busy = false;
            foreach (var device in _devices.Values)
                busy |= device.Tick(now, ref dirty);
            FlushPorts(dirty);
            if (_options.DiscoveryInterval > TimeSpan.Zero && now >= _nextDiscovery)
            {
                _nextDiscovery = now + Stamp(_options.DiscoveryInterval);
                Broadcast(AoeProtocol.BroadcastShelf, AoeProtocol.BroadcastSlot);
            }
            // Slow down only if nothing was submitted since this tick began; a submission racing us re-arms the fast tick.
            if (!busy && Volatile.Read(ref _fast) == 1 && Volatile.Read(ref _wakeups) == wakeups)
            {
                Volatile.Write(ref _fast, 0);
                _timer.Change(IdleTick, IdleTick);
                if (Volatile.Read(ref _wakeups) != wakeups && Interlocked.Exchange(ref _fast, 1) == 0)
                    _timer.Change(BusyTick, BusyTick);
            }
        }
        catch (ObjectDisposedException) when (_stopping)
        {
            // A tick racing DisposeAsync found a socket closed: nothing left to do.
        }
        finally
        {
            Volatile.Write(ref _ticking, 0);
        }
    }

    private void ReceiveLoop(NicPort port)
    {
        // Slack for a VLAN tag.
        using var batch = new PacketBatch(_options.BatchSize, port.FrameSize + 4);
        while (!_stopping)
        {
            int count;
            try
            {
                count = port.Socket.Receive(batch);
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            if (count == 0)
                continue;
            var now = _time.GetTimestamp();
            ulong dirty = 0;
            for (var i = 0; i < count; i++)
                Handle(port, batch.Frame(i), now, ref dirty);
            FlushPorts(dirty);
        }
    }

    private void Handle(NicPort port, ReadOnlySpan<byte> frame, long now, ref ulong dirty)
    {
        if (!AoeHeader.TryRead(frame, out var header) || !header.IsResponse || header.Version != AoeProtocol.Version)
            return;
        // Replies naming a wildcard address are invalid (AOE.md): a target never is shelf 0xFFFF or slot 0xFF.
        if (header.Shelf == AoeProtocol.BroadcastShelf || header.Slot == AoeProtocol.BroadcastSlot)
            return;
        _devices.TryGetValue(Key(header.Shelf, header.Slot), out var device);
        if (header.Command == AoeCommand.QueryConfig && (header.Flags & AoeFlags.Error) == 0)
        {
            // Any config reply teaches paths, whoever's tag it carries: ours, the kernel driver's, or an announcement (tag 0).
            if (ConfigHeader.TryRead(frame, out var config))
            {
                Learn(port, frame, header, config, now);
                device?.OnConfigReply(port, header.Source, config.SectorCount, config.BufferCount, now, ref dirty);
            }
        }
        if (device is null || (header.Tag & TagTable.UserlandBit) == 0)
            return;
        if ((header.Tag & TagTable.ControlBit) != 0)
            device.OnControlReply(port, frame, header, now);
        else if (header.Command == AoeCommand.Ata)
            device.OnAtaReply(port, frame, header, now, ref dirty);
    }

    private void Learn(NicPort port, ReadOnlySpan<byte> frame, in AoeHeader header, in ConfigHeader config, long now)
    {
        var address = new AoeAddress(header.Shelf, header.Slot);
        Frames.TryReadConfigString(frame, out _, out var value);
        lock (_registryLock)
        {
            if (!_registry.TryGetValue(address, out var record))
                _registry[address] = record = new TargetRecord(address);
            record.LastSeen = now;
            record.BufferCount = config.BufferCount;
            record.FirmwareVersion = config.FirmwareVersion;
            record.ConfigString = value;
            var source = header.Source;
            var path = record.Paths.Find(p => p.Port == port && p.Mac == source);
            if (path is null)
                record.Paths.Add(path = new PathRecord(port, source));
            path.SectorCount = config.SectorCount;
            path.BufferCount = config.BufferCount;
            path.LastSeen = now;
        }
    }

    /// <summary>Broadcasts a config query (read) for <paramref name="shelf"/>.<paramref name="slot"/> on every NIC.</summary>
    private void Broadcast(ushort shelf, byte slot)
    {
        foreach (var port in _ports)
        {
            var tag = TagTable.UserlandBit | TagTable.ControlBit | (Interlocked.Increment(ref _discoveryTag) & (TagTable.ControlBit - 1));
            lock (port.SendLock)
            {
                var frame = port.Append();
                port.Commit(Frames.WriteConfig(frame, MacAddress.Broadcast, port.Mac, shelf, slot, tag, ConfigCommand.Read, default));
            }
            port.Flush();
        }
    }

    private void FlushPorts(ulong dirty)
    {
        for (var i = 0; dirty != 0; i++, dirty >>= 1)
        {
            if ((dirty & 1) != 0)
                _ports[i].Flush();
        }
    }

    private long Stamp(TimeSpan span) => (long)(span.Ticks * (double)_time.TimestampFrequency / TimeSpan.TicksPerSecond);

    private static uint Key(ushort shelf, byte slot) => (uint)shelf << 8 | slot;

    private sealed class TargetRecord(AoeAddress address)
    {
        public AoeAddress Address { get; } = address;
        public ushort BufferCount { get; set; }
        public ushort FirmwareVersion { get; set; }
        public byte[] ConfigString { get; set; } = [];
        public long LastSeen { get; set; }
        public List<PathRecord> Paths { get; } = [];

        public AoeTargetInfo Snapshot(long since) => new(Address, BufferCount, FirmwareVersion, ConfigString,
            [.. Paths.Where(p => p.LastSeen >= since).Select(p => new AoeTargetPath(p.Port.Name, p.Port.Mac, p.Mac, p.SectorCount,
                p.SectorCount > 0 ? Math.Min(p.SectorCount, AoeProtocol.SectorsPerFrame(p.Port.Mtu)) : AoeProtocol.SectorsPerFrame(p.Port.Mtu)))]);
    }

    private sealed class PathRecord(NicPort port, MacAddress mac)
    {
        public NicPort Port { get; } = port;
        public MacAddress Mac { get; } = mac;
        public int SectorCount { get; set; }
        public int BufferCount { get; set; }
        public long LastSeen { get; set; }
    }
}
