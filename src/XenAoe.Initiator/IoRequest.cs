using System.Threading.Tasks.Sources;
using XenAoe.Block;

namespace XenAoe.Initiator;

internal enum IoKind : byte
{
    Read,
    Write,
    Flush,
}

/// <summary>
/// One block request in flight: the caller's buffer, which of its sectors still have to be sent, and the awaitable the caller
/// holds. Pooled and reset per use (ManualResetValueTaskSourceCore), so a read or write allocates nothing in steady state.
/// Sectors are handed out lazily, frame by frame, in the size of the path each frame goes to (paths of one target may carry
/// different sectors per frame), and a frame that has to be cut smaller gives its range back (<see cref="GiveBack"/>).
/// Not thread-safe: all fields except the awaitable are touched under the owning device's lock.
/// </summary>
internal sealed class IoRequest : IValueTaskSource
{
    private readonly IoRequestPool? _pool;
    private ManualResetValueTaskSourceCore<bool> _core;
    private int _cursor;
    private List<(int Offset, int Count)>? _givenBack;
    private bool _flushTaken;

    public IoRequest(IoRequestPool? pool = null)
    {
        _pool = pool;
        // Completions happen on the receive thread under the device lock: the caller's continuation must never run there.
        _core.RunContinuationsAsynchronously = true;
    }

    public IoKind Kind { get; private set; }

    /// <summary>The caller's buffer; a write's is only ever read.</summary>
    public Memory<byte> Buffer { get; private set; }

    public ulong Lba { get; private set; }

    public int Sectors { get; private set; }

    /// <summary>Sectors (for a flush: 1) not yet acknowledged.</summary>
    public int Remaining { get; set; }

    /// <summary>Frames of this request in the tag table.</summary>
    public int LiveFrames { get; set; }

    /// <summary>TimeProvider timestamp of submission.</summary>
    public long SubmittedAt { get; set; }

    /// <summary>In the device's dispatch queue.</summary>
    public bool Queued { get; set; }

    /// <summary>Completed or failed; its frames are released and late replies are ignored.</summary>
    public bool Finished { get; private set; }

    public CancellationTokenRegistration Registration { get; set; }

    public short Version => _core.Version;

    public bool HasUntaken => Kind == IoKind.Flush ? !_flushTaken : _cursor < Sectors || _givenBack is { Count: > 0 };

    public void Start(IoKind kind, ulong lba, Memory<byte> buffer)
    {
        Kind = kind;
        Lba = lba;
        Buffer = buffer;
        Sectors = buffer.Length / IBlockDevice.SectorSize;
        Remaining = kind == IoKind.Flush ? 1 : Sectors;
        LiveFrames = 0;
        Queued = false;
        Finished = false;
        _cursor = 0;
        _flushTaken = false;
        _givenBack?.Clear();
    }

    /// <summary>
    /// The next frame's share: up to <paramref name="maxSectors"/> sectors starting <paramref name="offset"/> sectors into the
    /// request (ranges given back first). A flush yields one frame of zero sectors. False when nothing is left to send.
    /// </summary>
    public bool TryTake(int maxSectors, out int offset, out int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSectors, 1);
        if (Kind == IoKind.Flush)
        {
            offset = 0;
            count = 0;
            if (_flushTaken)
                return false;
            _flushTaken = true;
            return true;
        }
        if (_givenBack is { Count: > 0 } back)
        {
            var last = back.Count - 1;
            var (o, c) = back[last];
            count = Math.Min(c, maxSectors);
            offset = o;
            if (count == c)
                back.RemoveAt(last);
            else
                back[last] = (o + count, c - count);
            return true;
        }
        if (_cursor >= Sectors)
        {
            offset = count = 0;
            return false;
        }
        offset = _cursor;
        count = Math.Min(Sectors - _cursor, maxSectors);
        _cursor += count;
        return true;
    }

    /// <summary>Returns a taken range unsent (its frame could not go out whole on any path); a rare path, so a list is fine.</summary>
    public void GiveBack(int offset, int count)
    {
        if (Kind == IoKind.Flush)
        {
            _flushTaken = false;
            return;
        }
        (_givenBack ??= []).Add((offset, count));
    }

    public void Succeed()
    {
        Finished = true;
        Registration.Unregister();
        _core.SetResult(true);
    }

    public void Fail(Exception error)
    {
        Finished = true;
        // Unregister, not Dispose: Dispose would wait for a running cancellation callback, which waits for the device lock we hold.
        Registration.Unregister();
        _core.SetException(error);
    }

    public void GetResult(short token)
    {
        try
        {
            _core.GetResult(token);
        }
        finally
        {
            Buffer = default;
            Registration = default;
            _core.Reset();
            _pool?.Return(this);
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}

/// <summary>A small bounded pool of <see cref="IoRequest"/>s; one per device.</summary>
internal sealed class IoRequestPool
{
    private const int MaxPooled = 256;
    private readonly Stack<IoRequest> _items = new();
    private readonly Lock _lock = new();

    public IoRequest Rent()
    {
        lock (_lock)
        {
            if (_items.TryPop(out var request))
                return request;
        }
        return new IoRequest(this);
    }

    public void Return(IoRequest request)
    {
        lock (_lock)
        {
            if (_items.Count < MaxPooled)
                _items.Push(request);
        }
    }
}
