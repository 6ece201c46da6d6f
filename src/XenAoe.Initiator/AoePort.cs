using XenAoe.Aoe;
using XenAoe.Net;

namespace XenAoe.Initiator;

/// <summary>
/// A local NIC as the engine sends through it. Frames are built in place in the port's send batch (<see cref="Append"/>,
/// <see cref="Commit"/>, both under <see cref="SendLock"/>) and go out with one sendmmsg per <see cref="Flush"/>: a receive
/// batch of 32 replies that frees 32 window slots sends its 32 follow-up frames in one syscall.
/// Lock order: a device's lock, then a port's send lock; the send lock is innermost and never held while taking another.
/// </summary>
internal abstract class AoePort(int index, string name, MacAddress mac, int mtu)
{
    /// <summary>Position among the initiator's ports, 0..63: the bit of the port in a "ports to flush" mask.</summary>
    public int Index { get; } = index;

    public string Name { get; } = name;

    public MacAddress Mac { get; } = mac;

    public int Mtu { get; } = mtu;

    /// <summary>Largest Ethernet frame without FCS.</summary>
    public int FrameSize => Mtu + 14;

    public Lock SendLock { get; } = new();

    /// <summary>A buffer of <see cref="FrameSize"/> bytes for the next frame, contents undefined. Call under <see cref="SendLock"/>.</summary>
    public abstract Span<byte> Append();

    /// <summary>Adds the frame built in the buffer <see cref="Append"/> returned. Call under <see cref="SendLock"/>.</summary>
    public abstract void Commit(int length);

    /// <summary>Sends every committed frame. Takes <see cref="SendLock"/> itself.</summary>
    public abstract void Flush();
}

/// <summary>A port over a real NIC: an AF_PACKET socket, a send batch, and (owned by the initiator) a receive thread.</summary>
internal sealed class NicPort : AoePort, IDisposable
{
    private readonly PacketBatch _send;
    private bool _closed;
    private long _sendErrors;

    public NicPort(int index, NetworkInterfaceInfo nic, PacketSocket socket, int batchSize)
        : base(index, nic.Name, nic.Mac, nic.Mtu)
    {
        Socket = socket;
        _send = new PacketBatch(batchSize, FrameSize);
    }

    public PacketSocket Socket { get; }

    /// <summary>Frames the kernel refused (ENETDOWN while our link is down, ENOBUFS): they count as lost and are retransmitted.</summary>
    public long SendErrors => Interlocked.Read(ref _sendErrors);

    public override Span<byte> Append()
    {
        if (_send.IsFull)
            SendBatch();
        return _send.Append();
    }

    public override void Commit(int length) => _send.Commit(length);

    public override void Flush()
    {
        lock (SendLock)
            SendBatch();
    }

    private void SendBatch()
    {
        var count = _send.Count;
        if (count == 0 || _closed)
            return;
        var sent = Socket.Send(_send);
        if (sent < count)
            Interlocked.Add(ref _sendErrors, count - sent);
        _send.Clear();
    }

    public void Dispose()
    {
        lock (SendLock)
        {
            _closed = true;
            _send.Dispose();
        }
        Socket.Dispose();
    }
}
