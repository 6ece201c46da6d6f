using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace XenAoe.Net;

/// <summary>
/// A fixed set of frame buffers in native, never-moving memory, together with the mmsghdr and iovec arrays that
/// hand them to recvmmsg/sendmmsg, so a receive or send of a whole batch allocates nothing and pins nothing.
/// Not thread-safe: each worker thread owns its batches. A batch can be received into and then sent from.
/// </summary>
public sealed unsafe class PacketBatch : IDisposable
{
    // Each buffer starts on a cache line so two slots never share one.
    private const int Alignment = 64;

    private readonly int _stride;
    private readonly long _totalBytes;
    private readonly int[] _lengths;
    private void* _memory;
    private Interop.MMsgHdr* _headers;
    private Interop.IoVec* _iovecs;
    private byte* _buffers;
    private int _count;

    /// <param name="capacity">Frames the batch holds, 1..1024 (UIO_MAXIOV bounds one recvmmsg/sendmmsg call).</param>
    /// <param name="frameSize">Bytes per slot: the largest frame, Ethernet header included, without FCS (MTU + 14); at least 60.</param>
    public PacketBatch(int capacity, int frameSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacity, 1024);
        ArgumentOutOfRangeException.ThrowIfLessThan(frameSize, Aoe.AoeProtocol.MinimumFrameLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(frameSize, 1 << 20);
        Debug.Assert(sizeof(Interop.MMsgHdr) == 64 && sizeof(Interop.IoVec) == 16);

        Capacity = capacity;
        FrameSize = frameSize;
        _stride = (frameSize + Alignment - 1) & ~(Alignment - 1);
        _lengths = new int[capacity];

        var headerBytes = (nuint)(capacity * sizeof(Interop.MMsgHdr));
        var iovecBytes = (nuint)(capacity * sizeof(Interop.IoVec));
        var arrays = (headerBytes + iovecBytes + Alignment - 1) & ~(nuint)(Alignment - 1);
        var total = arrays + (nuint)capacity * (nuint)_stride;
        _totalBytes = (long)total;
        _memory = NativeMemory.AlignedAlloc(total, Alignment);
        NativeMemory.Clear(_memory, total);
        GC.AddMemoryPressure(_totalBytes);

        _headers = (Interop.MMsgHdr*)_memory;
        _iovecs = (Interop.IoVec*)((byte*)_memory + headerBytes);
        _buffers = (byte*)_memory + arrays;
        for (var i = 0; i < capacity; i++)
        {
            _iovecs[i].Base = _buffers + (nint)i * _stride;
            _headers[i].Header.Iov = &_iovecs[i];
            _headers[i].Header.IovLength = 1;
        }
    }

    /// <summary>Number of slots.</summary>
    public int Capacity { get; }

    /// <summary>Bytes per slot.</summary>
    public int FrameSize { get; }

    /// <summary>Slots in use, from index 0. Receive sets it; Send sends slots [0, Count).</summary>
    public int Count
    {
        get => _count;
        set
        {
            if ((uint)value > (uint)Capacity)
                ThrowHelper.ThrowCountOutOfRange(value, Capacity);
            _count = value;
        }
    }

    /// <summary>True when <see cref="Append"/> has no slot left.</summary>
    public bool IsFull => _count == Capacity;

    /// <summary>The whole <see cref="FrameSize"/>-byte buffer of a slot, whatever its length.</summary>
    public Span<byte> Buffer(int index)
    {
        if ((uint)index >= (uint)Capacity)
            ThrowHelper.ThrowIndexOutOfRange(index, Capacity);
        return new Span<byte>(BufferPointer(index), FrameSize);
    }

    /// <summary>Length in bytes of the frame in a slot.</summary>
    public int Length(int index)
    {
        if ((uint)index >= (uint)Capacity)
            ThrowHelper.ThrowIndexOutOfRange(index, Capacity);
        return _lengths[index];
    }

    public void SetLength(int index, int length)
    {
        if ((uint)index >= (uint)Capacity)
            ThrowHelper.ThrowIndexOutOfRange(index, Capacity);
        if ((uint)length > (uint)FrameSize)
            ThrowHelper.ThrowLengthOutOfRange(length, FrameSize);
        _lengths[index] = length;
    }

    /// <summary>The frame in a slot: <c>Buffer(index)[..Length(index)]</c>.</summary>
    public Span<byte> Frame(int index)
    {
        if ((uint)index >= (uint)Capacity)
            ThrowHelper.ThrowIndexOutOfRange(index, Capacity);
        return new Span<byte>(BufferPointer(index), _lengths[index]);
    }

    /// <summary>The buffer of the next free slot (index <see cref="Count"/>) to build a frame in; <see cref="Commit"/> adds it.</summary>
    /// <exception cref="InvalidOperationException">The batch is full.</exception>
    public Span<byte> Append()
    {
        if (_count == Capacity)
            ThrowHelper.ThrowBatchFull(Capacity);
        return new Span<byte>(BufferPointer(_count), FrameSize);
    }

    /// <summary>Sets the length of the slot <see cref="Append"/> returned and counts it in.</summary>
    public void Commit(int length)
    {
        if (_count == Capacity)
            ThrowHelper.ThrowBatchFull(Capacity);
        if ((uint)length > (uint)FrameSize)
            ThrowHelper.ThrowLengthOutOfRange(length, FrameSize);
        _lengths[_count++] = length;
    }

    /// <summary>Sets <see cref="Count"/> to zero; buffers keep their bytes.</summary>
    public void Clear() => _count = 0;

    public void Dispose()
    {
        var memory = _memory;
        if (memory == null)
            return;
        _memory = null;
        _headers = null;
        _iovecs = null;
        _buffers = null;
        _count = 0;
        NativeMemory.AlignedFree(memory);
        GC.RemoveMemoryPressure(_totalBytes);
        GC.SuppressFinalize(this);
    }

    ~PacketBatch()
    {
        if (_memory == null)
            return;
        NativeMemory.AlignedFree(_memory);
        GC.RemoveMemoryPressure(_totalBytes);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private byte* BufferPointer(int index)
    {
        var buffers = _buffers;
        if (buffers == null)
            ThrowHelper.ThrowObjectDisposed(nameof(PacketBatch));
        return buffers + (nint)index * _stride;
    }

    /// <summary>Prepares every slot to receive a full-size frame and returns the header array.</summary>
    internal Interop.MMsgHdr* PrepareReceive()
    {
        if (_headers == null)
            ThrowHelper.ThrowObjectDisposed(nameof(PacketBatch));
        // recvmmsg writes msg_len and msg_flags; msg_iov, msg_iovlen and iov_base stay as set at construction.
        for (var i = 0; i < Capacity; i++)
        {
            _iovecs[i].Length = (nuint)FrameSize;
            _headers[i].Header.Flags = 0;
            _headers[i].Length = 0;
        }
        return _headers;
    }

    /// <summary>
    /// Takes the result of a recvmmsg that filled <paramref name="received"/> headers: drops truncated frames
    /// (moving later ones down, a rare path) and sets lengths and <see cref="Count"/>. Returns the truncated count.
    /// </summary>
    internal int CompleteReceive(int received)
    {
        var kept = 0;
        var truncated = 0;
        for (var i = 0; i < received; i++)
        {
            var length = (int)_headers[i].Length;
            if ((_headers[i].Header.Flags & Interop.MsgTrunc) != 0 || length > FrameSize)
            {
                truncated++;
                continue;
            }
            if (kept != i)
                new ReadOnlySpan<byte>(BufferPointer(i), length).CopyTo(new Span<byte>(BufferPointer(kept), length));
            _lengths[kept++] = length;
        }
        _count = kept;
        return truncated;
    }

    /// <summary>
    /// Prepares slots [0, Count) for sendmmsg: a frame shorter than <paramref name="minimumLength"/> is padded with zeros
    /// in its buffer and sent at that length (its <see cref="Length"/> is unchanged). Returns the header array.
    /// </summary>
    internal Interop.MMsgHdr* PrepareSend(int minimumLength)
    {
        if (_headers == null)
            ThrowHelper.ThrowObjectDisposed(nameof(PacketBatch));
        for (var i = 0; i < _count; i++)
        {
            var length = _lengths[i];
            if (length < minimumLength)
            {
                new Span<byte>(BufferPointer(i) + length, minimumLength - length).Clear();
                length = minimumLength;
            }
            _iovecs[i].Length = (nuint)length;
            _headers[i].Header.Flags = 0;
        }
        return _headers;
    }
}
