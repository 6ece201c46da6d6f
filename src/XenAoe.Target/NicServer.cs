using System.Diagnostics;
using XenAoe.Aoe;
using XenAoe.Net;

namespace XenAoe.Target;

/// <summary>
/// Serves the engine's targets on one NIC. <see cref="TargetOptions.WorkersPerInterface"/> threads each own an AF_PACKET socket in
/// one PACKET_FANOUT (load-balance) group: the kernel spreads frames across them, so one worker blocked in a slow pread/pwrite does not
/// stop the NIC. Each worker takes up to <see cref="TargetOptions.BatchSize"/> frames per recvmmsg, handles them, and sends all replies
/// of the batch with one sendmmsg: at 8.5 KiB frames that is one syscall pair per ~32 requests instead of vblade's two per request.
/// Dedicated threads, not the thread pool: the loops block in syscalls by design.
/// </summary>
public sealed class NicServer : IDisposable
{
    /// <summary>Slack for a VLAN tag on receive.</summary>
    private const int ReceiveSlack = 4;

    private static int s_nextFanoutGroup = Environment.ProcessId & 0x7FFF;

    private readonly TargetEngine _engine;
    private readonly TargetOptions _options;
    private readonly PacketSocket[] _sockets;
    private readonly Thread[] _workers;
    private volatile bool _stopping;

    public NicServer(TargetEngine engine, NetworkInterfaceInfo nic, TargetOptions options)
    {
        _engine = engine;
        _options = options;
        Interface = nic;
        Link = new LinkInfo(nic.Mac, nic.Mtu);
        // Honest buffer count: every socket of the group can hold the advertised number of full frames (plus kernel
        // overhead per skb, about 1 KiB), so a burst of BufferCount requests is queued, not dropped.
        var socketOptions = new PacketSocketOptions
        {
            FanoutGroup = options.WorkersPerInterface > 1 ? Interlocked.Increment(ref s_nextFanoutGroup) & 0xFFFF : null,
            ReceiveBufferBytes = Math.Max(1 << 20, options.BufferCount * (Link.FrameSize + 1024) * 2),
        };
        _sockets = new PacketSocket[Math.Max(1, options.WorkersPerInterface)];
        try
        {
            for (var i = 0; i < _sockets.Length; i++)
                _sockets[i] = PacketSocket.Open(nic, AoeProtocol.EtherType, socketOptions);
        }
        catch
        {
            foreach (var socket in _sockets)
                socket?.Dispose();
            throw;
        }
        _workers = [.. _sockets.Select((socket, i) => new Thread(() => Serve(socket)) { IsBackground = true, Name = $"aoe {nic.Name}/{i}" })];
    }

    public NetworkInterfaceInfo Interface { get; }
    public LinkInfo Link { get; }

    public void Start()
    {
        foreach (var worker in _workers)
            worker.Start();
    }

    /// <summary>Broadcasts an unsolicited config reply for each volume (all when <paramref name="volumes"/> is null), as vblade does at start-up.</summary>
    public void Announce(IEnumerable<ExportedVolume>? volumes = null)
    {
        Span<byte> frame = stackalloc byte[AoeProtocol.ConfigHeaderLength + AoeProtocol.MaxConfigStringLength];
        foreach (var volume in volumes ?? _engine.Volumes)
        {
            var length = _engine.WriteAnnouncement(volume, Link, frame);
            SendCounted(_sockets[0], frame[..length]);
        }
    }

    private void SendCounted(PacketSocket socket, ReadOnlySpan<byte> frame)
    {
        if (!socket.Send(frame))
            Interlocked.Increment(ref _engine.Counters.SendErrors);
    }

    private void Serve(PacketSocket socket)
    {
        using var received = new PacketBatch(_options.BatchSize, Link.FrameSize + ReceiveSlack);
        // Room for one reply per request plus broadcast discovery fan-out; a full batch is flushed early.
        using var replies = new PacketBatch(_options.BatchSize * 2, Link.FrameSize);
        var sink = new BatchSink(replies, socket, _engine.Counters);
        var spinTicks = (long)(_options.SpinAfterBusy.TotalSeconds * Stopwatch.Frequency);
        while (!_stopping)
        {
            var count = socket.Receive(received);
            while (count > 0)
            {
                for (var i = 0; i < count; i++)
                    _engine.Handle(received.Frame(i), Link, ref sink);
                sink.Flush();
                count = socket.ReceiveNow(received);
                // The initiator's next request usually arrives within one round trip: polling that long is cheaper than
                // sleeping in recvmmsg and paying a wake-up per request (measured at queue depth 1 in benchmarks/aoe-target).
                // Each poll yields first, so on a shared core (several daemons on one machine, as in the lab) the poll only
                // uses time nobody else wants.
                for (var deadline = Stopwatch.GetTimestamp() + spinTicks; count == 0 && Stopwatch.GetTimestamp() < deadline;)
                {
                    Thread.Yield();
                    count = socket.ReceiveNow(received);
                }
            }
        }
    }

    public void Dispose()
    {
        _stopping = true;
        foreach (var worker in _workers)
        {
            if (worker.IsAlive)
                worker.Join(); // returns within the socket's receive timeout
        }
        foreach (var socket in _sockets)
            socket.Dispose();
    }

    /// <summary>Replies go straight into the send batch; a full batch is sent before the next reply is taken.</summary>
    private struct BatchSink(PacketBatch batch, PacketSocket socket, TargetCounters counters) : IReplySink
    {
        public readonly Span<byte> Next()
        {
            if (batch.IsFull)
                Flush();
            return batch.Append();
        }

        public readonly void Commit(int length) => batch.Commit(length);

        public readonly void Flush()
        {
            if (batch.Count == 0)
                return;
            var sent = socket.Send(batch);
            if (sent < batch.Count)
                Interlocked.Add(ref counters.SendErrors, batch.Count - sent);
            batch.Clear();
        }
    }
}
