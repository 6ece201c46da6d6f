using XenAoe.Aoe;
using XenAoe.Block;

namespace XenAoe.Initiator;

/// <summary>
/// The per-device engine. Concurrency: one lock (<see cref="_lock"/>) guards the tag table, the frame slots, the paths'
/// windows and estimators, the dispatch queue and the counters. Three kinds of threads take it: callers submitting requests,
/// the initiator's receive threads (one per NIC) completing frames, and the timer (retransmissions, path health, device
/// timeout). Each holds it for a bounded amount of work (one reply, or one dispatch round) and builds the frames it sends
/// while holding it, into the port's send batch under the port's lock (lock order: device, then port), because a write
/// frame copies from the caller's buffer, which is only guaranteed alive while its slot is live, and slots only change
/// under this lock. The syscall that sends the batch runs after the device lock is released (<see cref="FlushPorts"/>),
/// except when a batch fills up mid-dispatch. One lock rather than finer ones: a frame's completion touches its request,
/// its path's window and the queue together, and at the 2-core scale of our hosts the lock is never the bottleneck
/// (the syscalls are).
/// </summary>
public sealed partial class AoeDevice
{
    private readonly Lock _lock = new();
    private readonly AoeInitiatorOptions _options;
    private readonly TimeProvider _time;
    private readonly TagTable _tags;
    private readonly FrameSlot[] _frames;

    /// <summary>
    /// Requests with frames still to send, in order. Entries are removed lazily (a finished request stays until it reaches the
    /// head), so each carries the request's version: a pooled request reused for a new call does not match its old entry.
    /// </summary>
    private readonly Queue<(IoRequest Request, short Version)> _queue = new();
    private readonly long _pathTimeout;
    private readonly long _deviceTimeout;
    private readonly long _probeInterval;
    private readonly long _controlRetry;
    private AoePath[] _paths = [];
    private long _lastProgress;
    private int _activeRequests;
    private Exception? _closed;

    /// <summary>FLUSH CACHE EXT, or FLUSH CACHE for targets that do not support it (from IDENTIFY, or after an ABRT).</summary>
    private byte _flushCommand = AtaCommands.FlushCacheExt;

    private long _readRequests, _writeRequests, _flushRequests, _failedRequests, _sectorsRead, _sectorsWritten;
    private long _framesSent, _retransmissions, _timeouts, _replies, _staleReplies, _errorReplies;

    /// <summary>A frame in the tag table: which part of which request, where it was last sent and when it is due.</summary>
    private struct FrameSlot
    {
        public IoRequest? Request;
        public int Offset;
        public int Count;

        /// <summary>Index of the path the frame is charged to; -1 while parked (no path could take it).</summary>
        public int Path;
        public long SentAt;
        public long Deadline;
        public int Transmissions;
    }

    private TimeSpan Monotonic(long timestamp) => TimeSpan.FromTicks((long)(timestamp * ((double)TimeSpan.TicksPerSecond / _time.TimestampFrequency)));

    internal long Stamp(TimeSpan span) => (long)(span.Ticks * (double)_time.TimestampFrequency / TimeSpan.TicksPerSecond);

    internal int ActiveRequests
    {
        get
        {
            lock (_lock)
                return _activeRequests;
        }
    }

    /// <summary>Adds a path, or refreshes a known one from a config reply; returns it.</summary>
    internal AoePath AddOrUpdatePath(AoePort port, MacAddress targetMac, int targetSectors, int bufferCount, long now, TimeSpan? rttSample = null)
    {
        AoePath path;
        lock (_lock)
        {
            path = OnConfigLocked(port, targetMac, targetSectors, bufferCount, now);
            // The round trip of a config query seeds the read estimator only: a write-through target answers writes after its
            // disk, so writes start from the initial timeout and learn their own.
            if (rttSample is { } sample && !path.ReadRtt.HasSample)
                path.ReadRtt.AddSample(sample, Monotonic(now));
        }
        return path;
    }

    /// <summary>A config reply (solicited, a probe's, or an announcement) arrived from the target on <paramref name="port"/>.</summary>
    internal void OnConfigReply(AoePort port, MacAddress source, int targetSectors, int bufferCount, long now, ref ulong dirty)
    {
        lock (_lock)
        {
            if (_closed is not null)
                return;
            OnConfigLocked(port, source, targetSectors, bufferCount, now);
            Dispatch(now, ref dirty);
        }
    }

    private AoePath OnConfigLocked(AoePort port, MacAddress targetMac, int targetSectors, int bufferCount, long now)
    {
        var path = FindPath(port, targetMac);
        if (path is null)
        {
            path = new AoePath(_paths.Length, port, targetMac, targetSectors, bufferCount, _options, now);
            // Copy-on-write, so a snapshot taken under the lock stays valid after it.
            _paths = [.. _paths, path];
        }
        else
        {
            path.UpdateConfig(targetSectors, bufferCount);
            Heard(path, now);
        }
        return path;
    }

    private AoePath? FindPath(AoePort port, MacAddress mac)
    {
        foreach (var path in _paths)
        {
            if (path.Is(port, mac))
                return path;
        }
        return null;
    }

    private ValueTask Submit(IoKind kind, long offset, Memory<byte> buffer, CancellationToken ct)
    {
        if (ct.IsCancellationRequested)
            return ValueTask.FromCanceled(ct);
        var request = _pool.Rent();
        request.Start(kind, (ulong)offset / IBlockDevice.SectorSize, buffer);
        var version = request.Version;
        if (ct.CanBeCanceled)
        {
            // Registered before the request can complete, so completion always sees (and unregisters) it.
            request.Registration = ct.UnsafeRegister(static (state, token) =>
            {
                var (device, r, v) = ((AoeDevice, IoRequest, short))state!;
                device.Cancel(r, v, token);
            }, (this, request, version));
        }
        ulong dirty = 0;
        lock (_lock)
        {
            if (request.Finished)
            {
                // Cancelled during registration; the ValueTask carries the cancellation.
            }
            else if (_closed is not null)
            {
                request.Fail(_closed is ObjectDisposedException ? new ObjectDisposedException(ToString()) : new BlockDeviceException(BlockError.Io, _closed.Message, _closed));
            }
            else
            {
                var now = _time.GetTimestamp();
                request.SubmittedAt = now;
                Enqueue(request);
                _activeRequests++;
                switch (kind)
                {
                    case IoKind.Read:
                        _readRequests++;
                        break;
                    case IoKind.Write:
                        _writeRequests++;
                        break;
                    default:
                        _flushRequests++;
                        break;
                }
                Dispatch(now, ref dirty);
            }
        }
        FlushPorts(dirty);
        _host?.Wake();
        return new ValueTask(request, version);
    }

    private void Cancel(IoRequest request, short version, CancellationToken token)
    {
        lock (_lock)
        {
            // The request may have completed and been reused meanwhile: the version says whether it is still ours.
            if (request.Version != version || request.Finished)
                return;
            var error = new OperationCanceledException(token);
            if (!request.Queued && request.LiveFrames == 0)
            {
                // Cancelled while Submit registers, before it is accepted: Submit sees Finished and does not queue it.
                request.Fail(error);
                return;
            }
            // Frames already sent may still reach the target: a cancelled write leaves its range undefined, as on any disk.
            Finish(request, error);
        }
    }

    private void Enqueue(IoRequest request)
    {
        request.Queued = true;
        _queue.Enqueue((request, request.Version));
    }

    /// <summary>Sends queued work while some path has room in its window and the tag table has a free slot.</summary>
    private void Dispatch(long now, ref ulong dirty)
    {
        while (_queue.TryPeek(out var entry))
        {
            var request = entry.Request;
            if (request.Version != entry.Version || request.Finished || !request.HasUntaken)
            {
                _queue.Dequeue();
                if (request.Version == entry.Version)
                    request.Queued = false;
                continue;
            }
            if (_tags.IsFull)
                return;
            var path = PickPath(0, avoid: null, respectWindow: true);
            if (path is null)
                return;
            request.TryTake(path.MaxSectors, out var offset, out var count);
            _tags.TryAllocate(out var index, out _);
            _frames[index] = new FrameSlot { Request = request, Offset = offset, Count = count, Path = -1 };
            request.LiveFrames++;
            Transmit(index, path, now, ref dirty);
        }
    }

    /// <summary>
    /// The path for the next frame: not down, able to carry <paramref name="minSectors"/>; up paths before suspect ones, then the
    /// fewest frames outstanding, and <paramref name="avoid"/> only if nothing else qualifies. Windows are caps, not weights: a
    /// path that just came back restarts with a small window, and ranking by free room would leave it idle next to a path whose
    /// window is large, so it would never be acknowledged enough to grow again.
    /// </summary>
    private AoePath? PickPath(int minSectors, AoePath? avoid, bool respectWindow)
    {
        AoePath? best = null;
        (bool Avoided, bool Suspect, int Outstanding) bestRank = default;
        foreach (var path in _paths)
        {
            if (path.State == AoePathState.Down || path.MaxSectors < minSectors)
                continue;
            if (respectWindow && path.Outstanding >= path.Window.Limit)
                continue;
            var rank = (path == avoid, path.State != AoePathState.Up, path.Outstanding);
            if (best is null || rank.CompareTo(bestRank) < 0)
            {
                best = path;
                bestRank = rank;
            }
        }
        return best;
    }

    private void Transmit(int index, AoePath path, long now, ref ulong dirty)
    {
        ref var f = ref _frames[index];
        var retransmission = f.Transmissions > 0;
        if (f.Path >= 0)
            _paths[f.Path].Outstanding--;
        f.Path = path.Index;
        path.Outstanding++;
        if (!path.Waiting)
        {
            path.Waiting = true;
            path.WaitingSince = now;
        }
        var request = f.Request!;
        f.SentAt = now;
        f.Transmissions++;
        f.Deadline = now + Stamp(request.Kind == IoKind.Flush ? FlushTimeout(path, f.Transmissions) : path.RttFor(request.Kind).Timeout);
        path.FramesSent++;
        _framesSent++;
        if (retransmission)
        {
            path.Retransmissions++;
            _retransmissions++;
        }

        var port = path.Port;
        var tag = _tags.TagOf(index);
        lock (port.SendLock)
        {
            var frame = port.Append();
            var length = request.Kind switch
            {
                IoKind.Read => Frames.WriteAta(frame, path.TargetMac, port.Mac, Address, tag, AtaCommands.ReadSectorsExt, write: false,
                    request.Lba + (ulong)f.Offset, f.Count, default),
                IoKind.Write => Frames.WriteAta(frame, path.TargetMac, port.Mac, Address, tag, AtaCommands.WriteSectorsExt, write: true,
                    request.Lba + (ulong)f.Offset, f.Count,
                    request.Buffer.Span.Slice(f.Offset * IBlockDevice.SectorSize, f.Count * IBlockDevice.SectorSize)),
                _ => Frames.WriteAta(frame, path.TargetMac, port.Mac, Address, tag, _flushCommand, write: false, 0, 0, default),
            };
            port.Commit(length);
        }
        dirty |= 1UL << port.Index;
    }

    /// <summary>An ATA reply with a userland I/O tag arrived on <paramref name="port"/>.</summary>
    internal void OnAtaReply(AoePort port, ReadOnlySpan<byte> frame, in AoeHeader header, long now, ref ulong dirty)
    {
        lock (_lock)
        {
            _replies++;
            var from = FindPath(port, header.Source);
            if (!_tags.TryResolve(header.Tag, out var index))
            {
                // A duplicate answer to a retransmitted frame, or an answer to a request already failed or cancelled.
                _staleReplies++;
                if (from is not null)
                    Heard(from, now);
                return;
            }
            ref var f = ref _frames[index];
            var request = f.Request!;
            Exception? error = null;
            if ((header.Flags & AoeFlags.Error) != 0)
            {
                _errorReplies++;
                error = AoeErrorException(header.Error);
            }
            else if (!AtaHeader.TryRead(frame, out var ata))
            {
                _staleReplies++;
                return; // malformed: the frame stays outstanding and is retransmitted
            }
            else if ((ata.CommandOrStatus & (AtaStatus.Error | AtaStatus.DeviceFault)) != 0)
            {
                _errorReplies++;
                if (request.Kind == IoKind.Flush && (ata.ErrorOrFeature & AtaStatus.Abort) != 0 && _flushCommand == AtaCommands.FlushCacheExt)
                {
                    // The target does not know FLUSH CACHE EXT: send FLUSH CACHE instead, from now on.
                    _flushCommand = AtaCommands.FlushCache;
                    RequeueFrame(index, now, ref dirty);
                    return;
                }
                error = AtaErrorException(ata.ErrorOrFeature, request.Lba + (ulong)f.Offset, f.Count);
            }
            else if (request.Kind == IoKind.Read)
            {
                var bytes = f.Count * IBlockDevice.SectorSize;
                if (frame.Length < AoeProtocol.AtaHeaderLength + bytes)
                {
                    // Never infer data from a short frame: treat it as lost, the retransmission will be whole.
                    _staleReplies++;
                    return;
                }
                frame.Slice(AoeProtocol.AtaHeaderLength, bytes).CopyTo(request.Buffer.Span.Slice(f.Offset * IBlockDevice.SectorSize, bytes));
            }

            if (f.Path >= 0)
            {
                var sent = _paths[f.Path];
                sent.Outstanding--;
                if (error is null)
                {
                    sent.Window.OnAck();
                    // Karn's rule: a retransmitted frame's reply may answer any of its transmissions, so it gives no sample.
                    // Flushes are excluded too: their time is the disk's sync, not the network's round trip.
                    if (f.Transmissions == 1 && request.Kind != IoKind.Flush)
                        sent.RttFor(request.Kind).AddSample(_time.GetElapsedTime(f.SentAt, now), Monotonic(now));
                }
                f.Path = -1;
            }
            if (from is not null)
                Heard(from, now);
            _lastProgress = now;
            var count = f.Count;
            ReleaseFrame(index);

            if (error is not null)
            {
                Finish(request, error);
            }
            else
            {
                if (request.Kind == IoKind.Read)
                    _sectorsRead += count;
                else if (request.Kind == IoKind.Write)
                    _sectorsWritten += count;
                request.Remaining -= request.Kind == IoKind.Flush ? 1 : count;
                if (request.Remaining == 0)
                    Finish(request, null);
            }
            Dispatch(now, ref dirty);
        }
    }

    /// <summary>Releases an answered frame and gives its range back to its request to be sent anew.</summary>
    private void RequeueFrame(int index, long now, ref ulong dirty)
    {
        ref var f = ref _frames[index];
        var request = f.Request!;
        request.GiveBack(f.Offset, f.Count);
        ReleaseFrame(index);
        if (!request.Queued)
            Enqueue(request);
        Dispatch(now, ref dirty);
    }

    private void Heard(AoePath path, long now)
    {
        path.LastHeard = now;
        path.HasBeenHeard = true;
        // The path answers: any wait it owes starts again from now.
        path.Waiting = path.Outstanding > 0;
        path.WaitingSince = now;
        if (path.State == AoePathState.Down)
        {
            path.Window.Reset(now);
            path.ReadRtt.ResetBackoff();
            path.WriteRtt.ResetBackoff();
        }
        path.State = AoePathState.Up;
    }

    private void ReleaseFrame(int index)
    {
        ref var f = ref _frames[index];
        if (f.Path >= 0)
            _paths[f.Path].Outstanding--;
        f.Request!.LiveFrames--;
        f = default;
        _tags.Release(index);
    }

    private void ReleaseFramesOf(IoRequest request)
    {
        for (var i = 0; i < _frames.Length && request.LiveFrames > 0; i++)
        {
            if (_tags.IsLive(i) && _frames[i].Request == request)
                ReleaseFrame(i);
        }
    }

    /// <summary>Completes a request (error null) or fails it, releasing its remaining frames so late replies are ignored.</summary>
    private void Finish(IoRequest request, Exception? error)
    {
        if (request.Finished)
            return;
        _activeRequests--;
        if (error is null)
        {
            request.Succeed();
            return;
        }
        _failedRequests++;
        ReleaseFramesOf(request);
        request.Fail(error);
    }

    /// <summary>
    /// Timer work, every millisecond while requests are active: retransmits frames past their deadline (on another path when
    /// there is one), marks paths down after PathTimeout without an answer, probes down and suspect paths, fails requests after
    /// DeviceTimeout without progress, retries control commands. Returns true while there is work the timer must watch.
    /// </summary>
    internal bool Tick(long now, ref ulong dirty)
    {
        lock (_lock)
        {
            if (_closed is not null)
                return false;
            var live = _tags.Live;
            for (int i = 0, seen = 0; seen < live && i < _frames.Length; i++)
            {
                if (!_tags.IsLive(i))
                    continue;
                seen++;
                ref var f = ref _frames[i];
                if (f.Path < 0)
                    Resend(i, avoid: null, now, ref dirty);
                else if (now >= f.Deadline)
                    OnTimeout(i, now, ref dirty);
            }

            foreach (var path in _paths)
            {
                if (path.State != AoePathState.Down && path.Waiting && now - path.WaitingSince >= _pathTimeout)
                    MarkDown(path, now, ref dirty);
            }
            foreach (var path in _paths)
            {
                if (path.State != AoePathState.Up && now >= path.NextProbe)
                {
                    SendProbe(path, ref dirty);
                    path.NextProbe = now + _probeInterval;
                }
            }

            ControlTick(now, ref dirty);
            if (_activeRequests > 0)
                ExpireRequests(now);
            Dispatch(now, ref dirty);
            return _activeRequests > 0 || _control.Count > 0;
        }
    }

    private void OnTimeout(int index, long now, ref ulong dirty)
    {
        ref var f = ref _frames[index];
        var path = _paths[f.Path];
        path.Timeouts++;
        _timeouts++;
        var kind = f.Request!.Kind;
        if (kind == IoKind.Flush)
        {
            // A slow flush is the target's disk, not a lost frame: resend it (with a doubled deadline), but do not shrink the
            // window or suspect the path for it.
            Resend(index, avoid: null, now, ref dirty);
            return;
        }
        // One halving and one back-off per loss episode: a window's worth of frames lost together counts once.
        if (path.Window.OnLoss(f.SentAt, now))
            path.RttFor(kind).Backoff();
        if (path.State == AoePathState.Up)
            path.State = AoePathState.Suspect;
        Resend(index, path, now, ref dirty);
    }

    /// <summary>
    /// Sends a frame again with the same tag, preferring a path other than <paramref name="avoid"/>, regardless of windows
    /// (a retransmission replaces a frame already counted). The same tag lets a target that remembers recent write replies
    /// answer a duplicate instead of applying it again after a later write. A frame no path can carry whole (paths of
    /// smaller MTU) goes back to its request to be cut smaller; with no usable path at all it is parked until one returns.
    /// </summary>
    private void Resend(int index, AoePath? avoid, long now, ref ulong dirty)
    {
        ref var f = ref _frames[index];
        var target = PickPath(f.Count, avoid, respectWindow: false);
        if (target is not null)
        {
            Transmit(index, target, now, ref dirty);
            return;
        }
        if (f.Count > 1 && PickPath(1, null, respectWindow: false) is not null)
        {
            var request = f.Request!;
            request.GiveBack(f.Offset, f.Count);
            ReleaseFrame(index);
            if (!request.Queued)
                Enqueue(request);
            return; // the caller dispatches
        }
        if (f.Path >= 0)
        {
            _paths[f.Path].Outstanding--;
            f.Path = -1;
        }
        f.Deadline = long.MaxValue;
    }

    /// <summary>A flush waits for the target's disk: at least 100 ms, doubled with each transmission, at most the RTO ceiling.</summary>
    private TimeSpan FlushTimeout(AoePath path, int transmissions)
    {
        var ticks = Math.Max(TimeSpan.FromMilliseconds(100).Ticks, 2 * path.WriteRtt.Timeout.Ticks) << Math.Min(transmissions - 1, 10);
        return TimeSpan.FromTicks(Math.Min(ticks, Math.Max(_options.MaxRetransmitTimeout.Ticks, path.WriteRtt.Timeout.Ticks)));
    }

    private void MarkDown(AoePath path, long now, ref ulong dirty)
    {
        path.State = AoePathState.Down;
        path.Waiting = false;
        path.NextProbe = now;
        for (var i = 0; i < _frames.Length && path.Outstanding > 0; i++)
        {
            if (_tags.IsLive(i) && _frames[i].Path == path.Index)
                Resend(i, path, now, ref dirty);
        }
    }

    private void ExpireRequests(long now)
    {
        var progress = _lastProgress;
        foreach (var (request, version) in _queue)
        {
            if (request.Version == version && !request.Finished && now - Math.Max(request.SubmittedAt, progress) >= _deviceTimeout)
                Finish(request, NoAnswer());
        }
        for (var i = 0; i < _frames.Length; i++)
        {
            if (_tags.IsLive(i) && _frames[i].Request is { Finished: false } request && now - Math.Max(request.SubmittedAt, progress) >= _deviceTimeout)
                Finish(request, NoAnswer());
        }
    }

    private BlockDeviceException NoAnswer() =>
        new(BlockError.Io, $"{this}: no answer on any of {_paths.Length} path(s) for {_options.DeviceTimeout.TotalSeconds:0.###} s");

    private BlockDeviceException AoeErrorException(AoeError error) => error == AoeError.TargetReserved
        ? new BlockDeviceException(BlockError.NotPermitted, $"{this} is reserved by another host (AoE error 6)")
        : new BlockDeviceException(BlockError.Io, $"{this} refused the command with AoE error {(byte)error} ({error})");

    private BlockDeviceException AtaErrorException(byte error, ulong lba, int count)
    {
        var where = $"{this}: ATA error 0x{error:X2} for {count} sector(s) at LBA {lba}";
        if ((error & AtaStatus.Uncorrectable) != 0)
            return new BlockDeviceException(BlockError.Io, where + " (UNC: the target's medium failed)");
        if ((error & (AtaStatus.IdNotFound | AtaStatus.Abort)) != 0)
            return new BlockDeviceException(BlockError.Invalid, where + ((error & AtaStatus.IdNotFound) != 0 ? " (IDNF: past the end)" : " (ABRT: refused)"));
        return new BlockDeviceException(BlockError.Io, where);
    }

    /// <summary>Sends a query config of the path's full frame size, so a path that drops jumbo frames does not pass for healthy.</summary>
    private void SendProbe(AoePath path, ref ulong dirty)
    {
        var port = path.Port;
        var tag = NextControlTag();
        lock (port.SendLock)
        {
            var frame = port.Append();
            var length = Frames.WriteConfig(frame, path.TargetMac, port.Mac, Address.Shelf, Address.Slot, tag, ConfigCommand.Read, default);
            var padded = Math.Min(port.FrameSize, path.Mtu + 14);
            frame[length..padded].Clear();
            port.Commit(Math.Max(length, padded));
        }
        dirty |= 1UL << port.Index;
    }

    /// <summary>Sends the ports' batches marked in <paramref name="dirty"/>; call without the device lock.</summary>
    internal void FlushPorts(ulong dirty)
    {
        if (dirty == 0)
            return;
        foreach (var path in _paths)
        {
            var bit = 1UL << path.Port.Index;
            if ((dirty & bit) != 0)
            {
                path.Port.Flush();
                dirty &= ~bit;
            }
        }
    }

    /// <summary>Fails everything in flight with <paramref name="reason"/>; later requests fail at once.</summary>
    internal void Close(Exception reason)
    {
        List<ControlOp> control;
        lock (_lock)
        {
            if (_closed is not null)
                return;
            _closed = reason;
            foreach (var (request, version) in _queue)
            {
                if (request.Version == version)
                    Finish(request, reason);
            }
            _queue.Clear();
            for (var i = 0; i < _frames.Length; i++)
            {
                if (_tags.IsLive(i) && _frames[i].Request is { } request)
                {
                    if (request.Finished)
                        ReleaseFrame(i);
                    else
                        Finish(request, reason);
                }
            }
            control = [.. _control.Values];
            _control.Clear();
        }
        foreach (var op in control)
            op.Done.TrySetException(reason);
    }

    private uint NextControlTag() => TagTable.UserlandBit | TagTable.ControlBit | (++_nextControlTag & (TagTable.ControlBit - 1));
}
