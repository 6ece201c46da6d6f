using XenAoe.Aoe;
using XenAoe.Block;

namespace XenAoe.Initiator;

/// <summary>
/// Control commands (IDENTIFY, config string, MAC mask, reservation): one frame each, kept by tag (bit 30 set) in a small
/// dictionary under the device lock, sent on an up path and retried every ControlRetryInterval on the next path, until
/// answered or DeviceTimeout. Rare, so they allocate freely. Every command is idempotent, so retrying is safe.
/// </summary>
public sealed partial class AoeDevice
{
    private readonly Dictionary<uint, ControlOp> _control = [];
    private uint _nextControlTag;

    private sealed class ControlOp(byte[] frame, int length, string what, bool silenceIsAnswer)
    {
        public byte[] Frame { get; } = frame;
        public int Length { get; } = length;
        public string What { get; } = what;
        public bool SilenceIsAnswer { get; } = silenceIsAnswer;
        public TaskCompletionSource<byte[]?> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public uint Tag { get; set; }
        public long Deadline { get; set; }
        public long NextSend { get; set; }
        public int Attempts { get; set; }
    }

    /// <summary>Reads the target's config string.</summary>
    /// <exception cref="TimeoutException">No answer within DeviceTimeout.</exception>
    public async Task<byte[]> ReadConfigAsync(CancellationToken ct = default)
    {
        var reply = await ConfigAsync(ConfigCommand.Read, default, "config read", silenceIsAnswer: false, _options.DeviceTimeout, ct).ConfigureAwait(false);
        return ParseConfig(reply!);
    }

    /// <summary>
    /// Sets the config string: without <paramref name="force"/> only if it is empty or already equal (else
    /// <see cref="AoeCommandException"/> with <see cref="AoeError.ConfigStringPresent"/>); with it, unconditionally.
    /// Returns the string the target now holds.
    /// </summary>
    public async Task<byte[]> SetConfigAsync(ReadOnlyMemory<byte> value, bool force, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(value.Length, AoeProtocol.MaxConfigStringLength, nameof(value));
        var reply = await ConfigAsync(force ? ConfigCommand.ForceSet : ConfigCommand.SetIfEmpty, value, "config set", false, _options.DeviceTimeout, ct).ConfigureAwait(false);
        return ParseConfig(reply!);
    }

    /// <summary>
    /// Tests the config string (exact, or as a prefix): true if the target answers within <paramref name="wait"/>. A target whose
    /// string does not match stays silent by protocol, so false takes the whole wait.
    /// </summary>
    public async Task<bool> TestConfigAsync(ReadOnlyMemory<byte> value, bool prefix, TimeSpan wait, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(value.Length, AoeProtocol.MaxConfigStringLength, nameof(value));
        var reply = await ConfigAsync(prefix ? ConfigCommand.TestPrefix : ConfigCommand.TestExact, value, "config test", true, wait, ct).ConfigureAwait(false);
        if (reply is null)
            return false;
        ParseConfig(reply);
        return true;
    }

    /// <summary>Reads the MAC mask: when not empty, the target ignores every other MAC.</summary>
    public async Task<IReadOnlyList<MacAddress>> ReadMacMaskAsync(CancellationToken ct = default) =>
        await MacMaskAsync(MacMaskCommand.Read, [], ct).ConfigureAwait(false);

    /// <summary>
    /// Applies add/delete directives to the MAC mask in order; returns the resulting mask. A directive the target refuses
    /// (list full, bad directive) raises <see cref="AoeCommandException"/> with its <see cref="MacMaskError"/>; directives before it stay applied.
    /// </summary>
    public async Task<IReadOnlyList<MacAddress>> EditMacMaskAsync(IReadOnlyList<AoeMacMaskEdit> edits, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(edits);
        return await MacMaskAsync(MacMaskCommand.Edit, edits, ct).ConfigureAwait(false);
    }

    /// <summary>Reads the reservation: when not empty, ATA reads and writes from other MACs get AoE error 6.</summary>
    public async Task<IReadOnlyList<MacAddress>> ReadReservationAsync(CancellationToken ct = default) =>
        await ReserveAsync(ReserveCommand.Read, [], ct).ConfigureAwait(false);

    /// <summary>
    /// Sets the reservation to <paramref name="holders"/> (empty releases it); returns the list the target now holds. Without
    /// <paramref name="force"/> the target refuses (AoeCommandException, <see cref="AoeError.TargetReserved"/>) unless the list
    /// is empty or names the sending MAC; with it the change is unconditional: that is how a controller fences a host.
    /// To keep access over every path, list every MAC of <see cref="LocalMacs"/>.
    /// </summary>
    public async Task<IReadOnlyList<MacAddress>> SetReservationAsync(IReadOnlyList<MacAddress> holders, bool force, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(holders);
        return await ReserveAsync(force ? ReserveCommand.ForceSet : ReserveCommand.Set, holders, ct).ConfigureAwait(false);
    }

    /// <summary>IDENTIFY DEVICE: sets <see cref="Size"/>, <see cref="Model"/> and <see cref="SerialNumber"/>.</summary>
    internal async Task IdentifyAsync(CancellationToken ct)
    {
        var frame = new byte[AoeProtocol.MinimumFrameLength];
        var length = Frames.WriteIdentify(frame, default, default, Address, 0);
        var reply = (await SendControlAsync(frame, length, "IDENTIFY", false, _options.DeviceTimeout, ct).ConfigureAwait(false))!;
        ThrowIfRefused(reply);
        if (!AtaHeader.TryRead(reply, out var ata))
            throw Malformed("IDENTIFY");
        if ((ata.CommandOrStatus & (AtaStatus.Error | AtaStatus.DeviceFault)) != 0)
            throw new BlockDeviceException(BlockError.Io, $"{this} failed IDENTIFY DEVICE with ATA error 0x{ata.ErrorOrFeature:X2}");
        if (reply.Length < AoeProtocol.AtaHeaderLength + IdentifyDevice.Length)
            throw Malformed("IDENTIFY");
        var page = reply.AsSpan(AoeProtocol.AtaHeaderLength, IdentifyDevice.Length);
        Size = checked((long)IdentifyDevice.ReadSectors(page) * IBlockDevice.SectorSize);
        // FLUSH CACHE EXT only where word 83 bit 13 says it is supported (vblade sets only bit 12, FLUSH CACHE).
        var word83 = IdentifyDevice.ReadWord(page, 83);
        lock (_lock)
            _flushCommand = (word83 & 0xC000) == 0x4000 && (word83 & 1 << 13) == 0 ? AtaCommands.FlushCache : AtaCommands.FlushCacheExt;
        Model = IdentifyDevice.ReadString(page, 27, 40);
        SerialNumber = IdentifyDevice.ReadString(page, 10, 20);
    }

    private Task<byte[]?> ConfigAsync(ConfigCommand command, ReadOnlyMemory<byte> value, string what, bool silenceIsAnswer, TimeSpan timeout, CancellationToken ct)
    {
        var frame = new byte[Math.Max(AoeProtocol.MinimumFrameLength, AoeProtocol.ConfigHeaderLength + value.Length)];
        var length = Frames.WriteConfig(frame, default, default, Address.Shelf, Address.Slot, 0, command, value.Span);
        return SendControlAsync(frame, length, what, silenceIsAnswer, timeout, ct);
    }

    private byte[] ParseConfig(byte[] reply)
    {
        ThrowIfRefused(reply);
        return Frames.TryReadConfigString(reply, out _, out var value) ? value : throw Malformed("config");
    }

    private async Task<MacAddress[]> MacMaskAsync(MacMaskCommand command, IReadOnlyList<AoeMacMaskEdit> edits, CancellationToken ct)
    {
        CheckListFits(AoeProtocol.MacMaskHeaderLength, edits.Count, MacMaskHeader.DirectiveLength);
        var frame = new byte[Math.Max(AoeProtocol.MinimumFrameLength, AoeProtocol.MacMaskHeaderLength + edits.Count * MacMaskHeader.DirectiveLength)];
        var length = Frames.WriteMacMask(frame, default, default, Address, 0, command, edits);
        var reply = (await SendControlAsync(frame, length, "MAC mask", false, _options.DeviceTimeout, ct).ConfigureAwait(false))!;
        ThrowIfRefused(reply);
        if (!Frames.TryReadMacMask(reply, out var header, out var macs))
            throw Malformed("MAC mask");
        if (header.Error != MacMaskError.None)
            throw new AoeCommandException(Address, AoeError.None, header.Error, $"{this} refused a MAC mask directive ({header.Error}); the mask is now [{string.Join(", ", macs)}]");
        return macs;
    }

    private async Task<MacAddress[]> ReserveAsync(ReserveCommand command, IReadOnlyList<MacAddress> macs, CancellationToken ct)
    {
        CheckListFits(AoeProtocol.ReserveHeaderLength, macs.Count, MacAddress.Length);
        var frame = new byte[Math.Max(AoeProtocol.MinimumFrameLength, AoeProtocol.ReserveHeaderLength + macs.Count * MacAddress.Length)];
        var length = Frames.WriteReserve(frame, default, default, Address, 0, command, macs);
        var reply = (await SendControlAsync(frame, length, "reserve/release", false, _options.DeviceTimeout, ct).ConfigureAwait(false))!;
        ThrowIfRefused(reply);
        return Frames.TryReadReservation(reply, out _, out var holders) ? holders : throw Malformed("reserve/release");
    }

    private void CheckListFits(int header, int count, int entry)
    {
        int smallest;
        lock (_lock)
            smallest = _paths.Length == 0 ? 1514 : _paths.Min(p => p.Port.FrameSize);
        if (count > byte.MaxValue || header + count * entry > smallest)
            throw new ArgumentOutOfRangeException(nameof(count), count, $"{count} entries do not fit one frame of {smallest} bytes");
    }

    private void ThrowIfRefused(byte[] reply)
    {
        if (!AoeHeader.TryRead(reply, out var header))
            throw Malformed("control");
        if ((header.Flags & AoeFlags.Error) == 0)
            return;
        var message = header.Error switch
        {
            AoeError.TargetReserved => $"{this} is reserved by another host (AoE error 6)",
            AoeError.ConfigStringPresent => $"{this} already holds a different config string (AoE error 4)",
            _ => $"{this} refused the command with AoE error {(byte)header.Error} ({header.Error})",
        };
        throw new AoeCommandException(Address, header.Error, MacMaskError.None, message);
    }

    private InvalidDataException Malformed(string what) => new($"{this} sent a malformed {what} reply");

    private async Task<byte[]?> SendControlAsync(byte[] frame, int length, string what, bool silenceIsAnswer, TimeSpan timeout, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var op = new ControlOp(frame, length, what, silenceIsAnswer);
        ulong dirty = 0;
        lock (_lock)
        {
            if (_closed is not null)
                throw _closed is ObjectDisposedException ? new ObjectDisposedException(ToString()) : new BlockDeviceException(BlockError.Io, _closed.Message, _closed);
            var now = _time.GetTimestamp();
            op.Tag = NextControlTag();
            Frames.SetTag(frame, op.Tag);
            op.Deadline = now + Stamp(timeout);
            _control[op.Tag] = op;
            SendControl(op, now, ref dirty);
        }
        FlushPorts(dirty);
        _host?.Wake();
        using var registration = ct.UnsafeRegister(static (state, token) =>
        {
            var (device, op) = ((AoeDevice, ControlOp))state!;
            lock (device._lock)
                device._control.Remove(op.Tag);
            op.Done.TrySetCanceled(token);
        }, (this, op));
        return await op.Done.Task.ConfigureAwait(false);
    }

    /// <summary>Sends a control frame on the next path in turn: up paths first, then suspect ones, then any (a probe in itself).</summary>
    private void SendControl(ControlOp op, long now, ref ulong dirty)
    {
        var attempt = op.Attempts++;
        op.NextSend = now + _controlRetry;
        var path = ControlPath(attempt);
        if (path is null)
            return;
        var port = path.Port;
        lock (port.SendLock)
        {
            var buffer = port.Append();
            op.Frame.AsSpan(0, op.Length).CopyTo(buffer);
            Frames.SetAddresses(buffer, path.TargetMac, port.Mac);
            port.Commit(op.Length);
        }
        dirty |= 1UL << port.Index;
    }

    private AoePath? ControlPath(int attempt)
    {
        foreach (var state in (ReadOnlySpan<AoePathState>)[AoePathState.Up, AoePathState.Suspect, AoePathState.Down])
        {
            var count = 0;
            foreach (var p in _paths)
                count += p.State == state ? 1 : 0;
            if (count == 0)
                continue;
            var pick = attempt % count;
            foreach (var p in _paths)
            {
                if (p.State == state && pick-- == 0)
                    return p;
            }
        }
        return null;
    }

    private void ControlTick(long now, ref ulong dirty)
    {
        if (_control.Count == 0)
            return;
        List<ControlOp>? expired = null;
        foreach (var op in _control.Values)
        {
            if (now >= op.Deadline)
                (expired ??= []).Add(op);
            else if (now >= op.NextSend)
                SendControl(op, now, ref dirty);
        }
        if (expired is null)
            return;
        foreach (var op in expired)
        {
            _control.Remove(op.Tag);
            if (op.SilenceIsAnswer)
                op.Done.TrySetResult(null);
            else
                op.Done.TrySetException(new TimeoutException($"{this}: no answer to {op.What} on any of {_paths.Length} path(s) after {op.Attempts} attempt(s)"));
        }
    }

    /// <summary>A reply with a control tag (bit 30) arrived.</summary>
    internal void OnControlReply(AoePort port, ReadOnlySpan<byte> frame, in AoeHeader header, long now)
    {
        lock (_lock)
        {
            if (FindPath(port, header.Source) is { } from)
                Heard(from, now);
            if (_control.Remove(header.Tag, out var op))
                op.Done.TrySetResult(frame.ToArray());
        }
    }
}
