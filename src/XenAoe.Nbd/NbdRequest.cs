using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using XenAoe.Block;

namespace XenAoe.Nbd;

/// <summary>
/// One request of a connection from parse to reply: its header, its pooled payload buffer, and the device call in progress.
/// Pooled per connection and reused, so a request that the device completes synchronously allocates nothing; one that completes
/// asynchronously hooks a cached continuation onto the device's ValueTask instead of boxing an async state machine.
/// </summary>
internal sealed class NbdRequest : IThreadPoolWorkItem
{
    /// <summary>Largest payload kept with the request object between uses; at most 64 of them per connection (4 MiB).</summary>
    public const int CachedBufferLength = 64 * 1024;

    private const int MinimumCachedLength = 4096;

    private readonly NbdConnection _connection;
    private readonly Action _onDeviceCompleted;
    private ValueTask _pending;
    private bool _flushAfter;

    public NbdRequest(NbdConnection connection)
    {
        _connection = connection;
        _onDeviceCompleted = OnDeviceCompleted;
    }

    public NbdRequestHeader Header;

    /// <summary>Write data received, or read data to send, from <see cref="TakeBuffer"/>; at least <see cref="Budget"/> bytes long.</summary>
    public byte[]? Buffer;

    // Kept across reuses of this request: payloads up to CachedBufferLength (QEMU's usual 4-64 KiB) use a pinned buffer the
    // request owns, so the hot path holds no pool buffer for the life of a device call; larger payloads rent from
    // ArrayPool.Shared. Measured with fio 4 KiB QD32 over an in-memory device: 0-2 bytes allocated per request either way.
    private byte[]? _cachedBuffer;

    /// <summary>Payload bytes this request holds against the connection's in-flight byte budget.</summary>
    public int Budget;

    /// <summary>0, or the NBD error of the reply.</summary>
    public uint Error;

    /// <summary>Text for a structured error chunk.</summary>
    public string? Message;

    /// <summary>The device failed the request (rather than the request being refused): the error chunk carries the request offset.</summary>
    public bool DeviceFailed;

    /// <summary>Sets <see cref="Buffer"/> to a buffer of at least <paramref name="length"/> bytes.</summary>
    public void TakeBuffer(int length)
    {
        if (length > CachedBufferLength)
        {
            Buffer = ArrayPool<byte>.Shared.Rent(length);
            return;
        }
        if (_cachedBuffer is null || _cachedBuffer.Length < length)
        {
            // Pinned heap: sockets and the device pin their buffers on every call; these never move anyway.
            _cachedBuffer = GC.AllocateUninitializedArray<byte>(Math.Max(MinimumCachedLength, (int)BitOperations.RoundUpToPowerOf2((uint)length)), pinned: true);
        }
        Buffer = _cachedBuffer;
    }

    /// <summary>Gives back a buffer taken from the shared pool and clears the request for reuse.</summary>
    public void Reset()
    {
        if (Buffer is not null && !ReferenceEquals(Buffer, _cachedBuffer))
            ArrayPool<byte>.Shared.Return(Buffer);
        Header = default;
        Buffer = null;
        Budget = 0;
        Error = 0;
        Message = null;
        DeviceFailed = false;
        _flushAfter = false;
    }

    public void Refuse(uint error, string? message)
    {
        Error = error;
        Message = message;
    }

    /// <summary>Runs the request on a thread-pool thread.</summary>
    void IThreadPoolWorkItem.Execute() => Run();

    public void Run()
    {
        ValueTask operation;
        try
        {
            operation = Start(_connection.Device, _connection.Aborted);
        }
        catch (Exception e)
        {
            Fail(e);
            return;
        }
        Continue(operation);
    }

    private ValueTask Start(IBlockDevice device, CancellationToken ct)
    {
        var offset = (long)Header.Offset;
        var length = (int)Math.Min(Header.Length, int.MaxValue);
        var fua = (Header.Flags & NbdProtocol.CmdFlagFua) != 0;
        switch (Header.Type)
        {
            case NbdProtocol.CmdRead:
                NbdMetrics.BytesRead.Add(length);
                return device.ReadAsync(offset, Buffer.AsMemory(0, length), ct);
            case NbdProtocol.CmdWrite:
                NbdMetrics.BytesWritten.Add(length);
                return device.WriteAsync(offset, Buffer.AsMemory(0, length), fua, ct);
            case NbdProtocol.CmdFlush:
                return device.FlushAsync(ct);
            case NbdProtocol.CmdTrim:
                _flushAfter = fua;
                return device.TrimAsync(offset, Header.Length, ct);
            case NbdProtocol.CmdWriteZeroes:
                _flushAfter = fua;
                return device.WriteZeroesAsync(offset, Header.Length, ct);
            default:
                // The receive loop refuses every other command before dispatch.
                throw new InvalidOperationException($"command {Header.Type} reached the device");
        }
    }

    private void Continue(ValueTask operation)
    {
        while (true)
        {
            if (!operation.IsCompleted)
            {
                _pending = operation;
                operation.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_onDeviceCompleted);
                return;
            }
            try
            {
                operation.GetAwaiter().GetResult();
                if (!_flushAfter)
                    break;
                // FUA on TRIM and WRITE_ZEROES: the interface has no FUA flag for them, so flush before answering.
                _flushAfter = false;
                operation = _connection.Device.FlushAsync(_connection.Aborted);
            }
            catch (Exception e)
            {
                Fail(e);
                return;
            }
        }
        _connection.QueueReply(this);
    }

    private void OnDeviceCompleted()
    {
        var operation = _pending;
        _pending = default;
        Continue(operation);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Fail(Exception e)
    {
        Error = NbdErrors.FromException(e);
        Message = e.Message;
        DeviceFailed = true;
        _connection.OnDeviceError(e);
        _connection.QueueReply(this);
    }
}
