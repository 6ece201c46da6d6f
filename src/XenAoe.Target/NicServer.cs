using System.Diagnostics;
using XenAoe.Aoe;
using XenAoe.Net;

namespace XenAoe.Target;

/// <summary>
/// Serves the engine's targets on one NIC. <see cref="TargetOptions.WorkersPerInterface"/> threads each own an AF_PACKET socket in
/// one PACKET_FANOUT (load-balance) group: the kernel spreads frames across them, so one worker blocked in a slow pread/pwrite does not
/// stop the NIC. Each worker takes up to <see cref="TargetOptions.BatchSize"/> frames per recvmmsg, handles them, and sends all replies
/// of the batch with one sendmmsg: at 8.5 KiB frames that is one syscall pair per ~32 requests instead of vblade's two per request.
/// Write-through writes are group-committed: their replies wait in the worker's <see cref="CommitGroup"/> while the following
/// batches are handled, and leave after one fdatasync per volume once the socket has nothing more (or after
/// <see cref="TargetOptions.GroupCommitWindow"/>), while every other reply leaves with its own batch.
/// Dedicated threads, not the thread pool: the loops block in syscalls by design.
/// </summary>
public sealed class NicServer : IDisposable
{
    /// <summary>Slack for a VLAN tag on receive.</summary>
    private const int ReceiveSlack = 4;

    /// <summary>A commit group holds up to this many receive batches' writes: bounded by count as well as by time.</summary>
    private const int GroupBatches = 4;

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
        using var group = new CommitGroup(Math.Min(_options.BatchSize * GroupBatches, 1024), _engine.Counters);
        var sink = new BatchSink(replies, group, socket, _engine.Counters);
        var spinTicks = (long)(_options.SpinAfterBusy.TotalSeconds * Stopwatch.Frequency);
        var windowTicks = (long)(_options.GroupCommitWindow.TotalSeconds * Stopwatch.Frequency);
        while (!_stopping)
        {
            var count = socket.Receive(received);
            while (count > 0)
            {
                for (var i = 0; i < count; i++)
                    _engine.Handle(received.Frame(i), Link, ref sink);
                // Replies that wait for no sync (reads above all) leave now, not behind the group's fdatasync.
                sink.Flush();
                count = socket.ReceiveNow(received);
                // Group commit: while frames keep coming, their writes join the group, which is made durable (one fdatasync
                // per volume) and answered once the socket has nothing more or its oldest write has waited the window.
                if (group.Count > 0 && (count == 0 || Stopwatch.GetTimestamp() - group.OpenedAt >= windowTicks))
                    sink.CompleteGroup();
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

    /// <summary>
    /// Replies go straight into the send batch; a full batch is sent before the next reply is taken. Replies that wait for a
    /// sync are copied into the worker's <see cref="CommitGroup"/> and leave with it.
    /// </summary>
    private struct BatchSink(PacketBatch batch, CommitGroup group, PacketSocket socket, TargetCounters counters) : IReplySink
    {
        public readonly Span<byte> Next()
        {
            if (batch.IsFull)
                Flush();
            return batch.Append();
        }

        public readonly void Commit(int length) => batch.Commit(length);

        public readonly void CommitAfterSync(int length, in PendingSync sync)
        {
            // The reply was built in the send batch's next slot, which stays free for the next reply; so it must not be
            // sent (and the slot reused) before the copy.
            var reply = batch.Append()[..length];
            if (group.IsFull)
                SyncAndSendGroup();
            group.Add(reply, sync);
        }

        public readonly void Flush() => Send(batch);

        /// <summary>Sends what is ready, makes the group durable, then sends its replies.</summary>
        public readonly void CompleteGroup()
        {
            Flush();
            SyncAndSendGroup();
        }

        private readonly void SyncAndSendGroup()
        {
            group.Complete();
            Send(group.Replies);
            group.Clear();
        }

        private readonly void Send(PacketBatch replies)
        {
            if (replies.Count == 0)
                return;
            var sent = socket.Send(replies);
            if (sent < replies.Count)
                Interlocked.Add(ref counters.SendErrors, replies.Count - sent);
            replies.Clear();
        }
    }
}
