using System.Buffers.Binary;
using System.Runtime.InteropServices;
using XenAoe.Aoe;

namespace XenAoe.Net;

/// <summary>
/// An AF_PACKET SOCK_RAW socket bound to one interface and one EtherType: whole Ethernet frames (header included, no FCS)
/// in and out, a batch per syscall.
/// </summary>
/// <remarks>
/// <para>
/// Receive blocks the calling thread: workers are dedicated threads, and a blocking recvmmsg is one syscall per batch,
/// where waiting for readiness through the runtime's epoll thread would add an epoll_wait and a thread hop per batch.
/// MSG_WAITFORONE makes recvmmsg sleep only for the first frame and then take whatever else is queued without waiting,
/// so a batch never adds latency; SO_RCVTIMEO bounds that first sleep, so a worker sees its cancellation token at least
/// every <see cref="PacketSocketOptions.ReceiveTimeout"/> without a separate poll(2) per batch. (recvmmsg's own timeout
/// argument is only checked after a frame arrives, so it cannot do this.)
/// </para>
/// <para>
/// Thread-safety: one thread may receive while others send; each thread uses its own <see cref="PacketBatch"/>.
/// Counters are updated atomically. Dispose is safe while another thread is inside Receive: the descriptor is closed when
/// that call returns, at the latest after the receive timeout.
/// </para>
/// </remarks>
public sealed unsafe class PacketSocket : IDisposable
{
    private readonly SafeFileDescriptorHandle _handle;
    private long _sendErrors;
    private long _receiveTruncated;

    private PacketSocket(SafeFileDescriptorHandle handle, NetworkInterfaceInfo nic, ushort etherType, int receiveBufferBytes, int sendBufferBytes)
    {
        _handle = handle;
        Interface = nic;
        EtherType = etherType;
        ReceiveBufferBytes = receiveBufferBytes;
        SendBufferBytes = sendBufferBytes;
    }

    /// <summary>The interface the socket is bound to, as it was when the socket was opened.</summary>
    public NetworkInterfaceInfo Interface { get; }

    public ushort EtherType { get; }

    /// <summary>SO_RCVBUF as the kernel reports it after setting: twice the usable bytes (the kernel counts its bookkeeping).</summary>
    public int ReceiveBufferBytes { get; }

    /// <summary>SO_SNDBUF as the kernel reports it after setting.</summary>
    public int SendBufferBytes { get; }

    /// <summary>Frames the kernel refused to send (ENOBUFS, EMSGSIZE, ENETDOWN, ...); each was skipped.</summary>
    public long SendErrors => Interlocked.Read(ref _sendErrors);

    /// <summary>Frames received larger than the batch's frame size; each was dropped.</summary>
    public long ReceiveTruncated => Interlocked.Read(ref _receiveTruncated);

    /// <summary>
    /// Opens a socket on <paramref name="nic"/> that receives only frames of <paramref name="etherType"/> addressed to
    /// this interface (unicast to its MAC, broadcast, multicast; unicast to other MACs too if
    /// <see cref="PacketSocketOptions.AcceptOtherHosts"/>) and never its own transmissions. Needs CAP_NET_RAW.
    /// The socket belongs to the calling thread's network namespace.
    /// </summary>
    /// <exception cref="PacketSocketException">A syscall failed (no privilege, interface gone, bad fanout group, ...).</exception>
    public static PacketSocket Open(NetworkInterfaceInfo nic, ushort etherType, PacketSocketOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(nic);
        options ??= PacketSocketOptions.Default;
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.ReceiveTimeout, TimeSpan.Zero, nameof(options.ReceiveTimeout));
        ArgumentOutOfRangeException.ThrowIfNegative(options.ReceiveBufferBytes, nameof(options.ReceiveBufferBytes));
        ArgumentOutOfRangeException.ThrowIfNegative(options.SendBufferBytes, nameof(options.SendBufferBytes));
        if (options.FanoutGroup is { } group && (uint)group > ushort.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(options), group, "FanoutGroup must be in 0..65535.");

        // Protocol 0 at creation: the socket receives nothing until bind names the EtherType and interface, so no frame
        // of another interface or type is queued in between.
        var fd = Interop.Socket(Interop.AfPacket, Interop.SockRaw | Interop.SockCloexec, 0);
        if (fd < 0)
            ThrowHelper.ThrowSocketError("socket(AF_PACKET, SOCK_RAW)", Marshal.GetLastPInvokeError(), nic.Name);
        var handle = new SafeFileDescriptorHandle(fd);
        try
        {
            SetBufferSize(fd, Interop.SoRcvBufForce, Interop.SoRcvBuf, options.ReceiveBufferBytes, "SO_RCVBUF", nic.Name);
            SetBufferSize(fd, Interop.SoSndBufForce, Interop.SoSndBuf, options.SendBufferBytes, "SO_SNDBUF", nic.Name);

            var timeout = options.ReceiveTimeout;
            var microseconds = Math.Max(1, timeout.Ticks / TimeSpan.TicksPerMicrosecond);
            var timeval = new Interop.TimeVal { Seconds = microseconds / 1_000_000, Microseconds = microseconds % 1_000_000 };
            if (Interop.SetSockOpt(fd, Interop.SolSocket, Interop.SoRcvTimeo, &timeval, (uint)sizeof(Interop.TimeVal)) != 0)
                ThrowHelper.ThrowSocketError("setsockopt(SO_RCVTIMEO)", Marshal.GetLastPInvokeError(), nic.Name);

            // The kernel copies transmissions to ETH_P_ALL taps only (dev_queue_xmit_nit), so a socket bound to one EtherType
            // does not see them anyway; the option makes that explicit and holds if we are ever given ETH_P_ALL.
            // Kernels before 4.20 lack it (ENOPROTOOPT) and are served the same for a single EtherType, so that error is ignored.
            if (Interop.SetSockOptInt(fd, Interop.SolPacket, Interop.PacketIgnoreOutgoing, 1) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno != Interop.ENoProtoOpt)
                    ThrowHelper.ThrowSocketError("setsockopt(PACKET_IGNORE_OUTGOING)", errno, nic.Name);
            }

            // Attached before bind, so no frame is queued unfiltered.
            if (!options.AcceptOtherHosts)
                AttachOtherHostFilter(fd, nic.Name);

            var address = new Interop.SockAddrLl
            {
                Family = Interop.AfPacket,
                Protocol = HostToNetwork(etherType),
                IfIndex = nic.Index,
            };
            if (Interop.Bind(fd, &address, (uint)sizeof(Interop.SockAddrLl)) != 0)
                ThrowHelper.ThrowSocketError("bind(AF_PACKET)", Marshal.GetLastPInvokeError(), nic.Name);

            // Fanout needs a bound socket. Members of a group must share interface and EtherType; the group id is per namespace.
            if (options.FanoutGroup is { } fanoutGroup)
            {
                var value = fanoutGroup | (int)options.FanoutMode << 16;
                if (Interop.SetSockOptInt(fd, Interop.SolPacket, Interop.PacketFanout, value) != 0)
                    ThrowHelper.ThrowSocketError($"setsockopt(PACKET_FANOUT, group {fanoutGroup})", Marshal.GetLastPInvokeError(), nic.Name);
            }

            return new PacketSocket(handle, nic, etherType,
                Interop.GetSockOptInt(fd, Interop.SolSocket, Interop.SoRcvBuf),
                Interop.GetSockOptInt(fd, Interop.SolSocket, Interop.SoSndBuf));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Opens a socket on the named interface of the calling thread's network namespace.</summary>
    public static PacketSocket Open(string interfaceName, ushort etherType, PacketSocketOptions? options = null) =>
        Open(NetworkInterfaceInfo.Get(interfaceName), etherType, options);

    /// <summary>
    /// Receives up to <see cref="PacketBatch.Capacity"/> frames with one recvmmsg: blocks until at least one frame arrives
    /// or the receive timeout passes, then takes what is already queued. Sets the batch's Count and lengths and returns the
    /// count; 0 on timeout, on a signal, after the interface went down, or once the socket is disposed. Frames larger than
    /// the batch's frame size are dropped and counted in <see cref="ReceiveTruncated"/>.
    /// </summary>
    /// <exception cref="PacketSocketException">An unexpected, fatal error (EFAULT and the like).</exception>
    public int Receive(PacketBatch batch) => Receive(batch, Interop.MsgWaitForOne);

    /// <summary>
    /// Like <see cref="Receive(PacketBatch)"/> but never blocks: returns 0 at once when nothing is queued. For polling briefly
    /// after a busy batch instead of sleeping, which saves the wake-up of the next request.
    /// </summary>
    public int ReceiveNow(PacketBatch batch) => Receive(batch, Interop.MsgDontWait);

    private int Receive(PacketBatch batch, int flags)
    {
        ArgumentNullException.ThrowIfNull(batch);
        batch.Clear();
        var added = false;
        try
        {
            if (!TryAddRef(ref added))
                return 0;
            var received = Interop.RecvMMsg(_handle.Fd, batch.PrepareReceive(), (uint)batch.Capacity, flags, null);
            if (received < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                // EAGAIN: the receive timeout passed. EINTR: a signal arrived; with SO_RCVTIMEO set the kernel does not restart
                // the call even under SA_RESTART. ENETDOWN: reported once when the interface goes down; the socket resumes
                // when it comes back up.
                if (errno is Interop.EAgain or Interop.EIntr or Interop.ENetDown)
                    return 0;
                ThrowHelper.ThrowSocketError("recvmmsg", errno, Interface.Name);
            }
            var truncated = batch.CompleteReceive(received);
            if (truncated != 0)
                Interlocked.Add(ref _receiveTruncated, truncated);
            return batch.Count;
        }
        finally
        {
            if (added)
                _handle.DangerousRelease();
        }
    }

    /// <summary>
    /// Sends frames [0, Count) of the batch with as few sendmmsg calls as errors allow, each padded with zeros to the
    /// 60-byte Ethernet minimum (veth does not pad, and aoetools ignores shorter frames). A frame the kernel refuses
    /// (ENOBUFS, EMSGSIZE, ...) is counted in <see cref="SendErrors"/> and skipped; the rest are still sent.
    /// Returns the frames sent. Blocks while the send buffer is full.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The socket is disposed.</exception>
    /// <exception cref="PacketSocketException">An unexpected, fatal error (EBADF, EFAULT, ENOTSOCK).</exception>
    public int Send(PacketBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var count = batch.Count;
        if (count == 0)
            return 0;
        var added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            var headers = batch.PrepareSend(AoeProtocol.MinimumFrameLength);
            var sent = 0;
            var next = 0;
            while (next < count)
            {
                var result = Interop.SendMMsg(_handle.Fd, headers + next, (uint)(count - next), 0);
                if (result > 0)
                {
                    sent += result;
                    next += result;
                    continue;
                }
                var errno = result < 0 ? Marshal.GetLastPInvokeError() : Interop.EInval;
                if (errno == Interop.EIntr)
                    continue;
                ThrowIfFatal("sendmmsg", errno);
                // sendmmsg reports an error only when the first frame of the call fails (a later failure ends the call with
                // the count sent so far, and the next call starts at that frame), so the error belongs to frame `next`.
                Interlocked.Increment(ref _sendErrors);
                next++;
            }
            return sent;
        }
        finally
        {
            if (added)
                _handle.DangerousRelease();
        }
    }

    /// <summary>Sends one frame, padded to 60 bytes like <see cref="Send(PacketBatch)"/>; false (and counted) when the kernel refuses it.</summary>
    /// <exception cref="ObjectDisposedException">The socket is disposed.</exception>
    public bool Send(ReadOnlySpan<byte> frame)
    {
        Span<byte> padded = stackalloc byte[AoeProtocol.MinimumFrameLength];
        scoped var toSend = frame;
        if (frame.Length < AoeProtocol.MinimumFrameLength)
        {
            padded.Clear();
            frame.CopyTo(padded);
            toSend = padded;
        }
        var added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            fixed (byte* pointer = toSend)
            {
                while (true)
                {
                    if (Interop.Send(_handle.Fd, pointer, (nuint)toSend.Length, 0) >= 0)
                        return true;
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == Interop.EIntr)
                        continue;
                    ThrowIfFatal("send", errno);
                    Interlocked.Increment(ref _sendErrors);
                    return false;
                }
            }
        }
        finally
        {
            if (added)
                _handle.DangerousRelease();
        }
    }

    /// <summary>
    /// Reads and resets the kernel's counters for this socket (PACKET_STATISTICS): frames that passed the filters and
    /// frames dropped because the receive buffer was full, both since the previous call.
    /// </summary>
    public PacketSocketStatistics ReadKernelStatistics()
    {
        var added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            Interop.TPacketStats stats = default;
            uint length = (uint)sizeof(Interop.TPacketStats);
            if (Interop.GetSockOpt(_handle.Fd, Interop.SolPacket, Interop.PacketStatistics, &stats, &length) != 0)
                ThrowHelper.ThrowSocketError("getsockopt(PACKET_STATISTICS)", Marshal.GetLastPInvokeError(), Interface.Name);
            return new PacketSocketStatistics(stats.Packets, stats.Drops);
        }
        finally
        {
            if (added)
                _handle.DangerousRelease();
        }
    }

    public void Dispose() => _handle.Dispose();

    public override string ToString() => $"AF_PACKET {Interface.Name} 0x{EtherType:X4}";

    private bool TryAddRef(ref bool added)
    {
        try
        {
            _handle.DangerousAddRef(ref added);
            return true;
        }
        catch (ObjectDisposedException)
        {
            // A receive loop racing with Dispose ends quietly: Receive after Dispose reports "nothing received".
            return false;
        }
    }

    private void ThrowIfFatal(string operation, int errno)
    {
        // These mean a bug or a closed descriptor, not a frame the network refused.
        if (errno is Interop.EBadF or Interop.EFault or Interop.ENotSock)
            ThrowHelper.ThrowSocketError(operation, errno, Interface.Name);
    }

    private static void SetBufferSize(int fd, int forceOption, int option, int bytes, string name, string interfaceName)
    {
        if (bytes == 0)
            return;
        // The FORCE variant ignores net.core.{r,w}mem_max but needs CAP_NET_ADMIN; without it the plain option is capped.
        if (Interop.SetSockOptInt(fd, Interop.SolSocket, forceOption, bytes) == 0)
            return;
        if (Interop.SetSockOptInt(fd, Interop.SolSocket, option, bytes) != 0)
            ThrowHelper.ThrowSocketError($"setsockopt({name})", Marshal.GetLastPInvokeError(), interfaceName);
    }

    private static void AttachOtherHostFilter(int fd, string interfaceName)
    {
        // ld pkttype; jeq #PACKET_OTHERHOST, drop, accept; drop: ret #0; accept: ret #-1 (the whole frame).
        var program = stackalloc Interop.SockFilter[]
        {
            new(Interop.BpfLdWAbs, 0, 0, Interop.SkfAdPktType),
            new(Interop.BpfJeqK, 0, 1, Interop.PacketOtherHost),
            new(Interop.BpfRetK, 0, 0, 0),
            new(Interop.BpfRetK, 0, 0, uint.MaxValue),
        };
        var fprog = new Interop.SockFprog { Length = 4, Filter = program };
        if (Interop.SetSockOpt(fd, Interop.SolSocket, Interop.SoAttachFilter, &fprog, (uint)sizeof(Interop.SockFprog)) != 0)
            ThrowHelper.ThrowSocketError("setsockopt(SO_ATTACH_FILTER)", Marshal.GetLastPInvokeError(), interfaceName);
    }

    private static ushort HostToNetwork(ushort value) => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(value) : value;
}
