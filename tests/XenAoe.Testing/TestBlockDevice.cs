using System.Collections.Concurrent;
using XenAoe.Block;

namespace XenAoe.Testing;

public enum BlockOperation
{
    Read,
    Write,
    Flush,
    WriteZeroes,
    Trim,
}

public sealed record DeviceCall(BlockOperation Operation, long Offset, long Length, bool ForceUnitAccess);

/// <summary>
/// An in-memory device that records every call and lets a test fail or hold any of them through <see cref="BeforeOperation"/>,
/// or fail them all with <see cref="FailWith"/>. Built over a given array, its bytes outlive it (a mirror can be "reassembled"
/// over them). Writes complete asynchronously, as the network does.
/// </summary>
public sealed class TestBlockDevice(byte[] data, bool readOnly = false) : IBlockDevice
{
    private long _bytesWritten;

    public TestBlockDevice(long size, bool readOnly = false) : this(new byte[size], readOnly)
    {
    }

    public byte[] Data { get; } = data;
    public long Size => Data.Length;
    public bool ReadOnly { get; } = readOnly;

    /// <summary>Fail every call with this error (null: work).</summary>
    public BlockError? FailWith { get; set; }

    public long BytesWritten => Interlocked.Read(ref _bytesWritten);

    /// <summary>Every call that reached the device, in arrival order.</summary>
    public ConcurrentQueue<DeviceCall> Calls { get; } = new();

    /// <summary>Runs before each operation touches the data: throw to fail it, await to hold it.</summary>
    public Func<DeviceCall, CancellationToken, ValueTask>? BeforeOperation { get; set; }

    public bool Disposed { get; private set; }

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken ct = default)
    {
        await Before(new DeviceCall(BlockOperation.Read, offset, buffer.Length, false), ct);
        lock (Data)
            Data.AsSpan((int)offset, buffer.Length).CopyTo(buffer.Span);
    }

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool forceUnitAccess = false, CancellationToken ct = default)
    {
        await Task.Yield();
        await Before(new DeviceCall(BlockOperation.Write, offset, data.Length, forceUnitAccess), ct);
        lock (Data)
            data.Span.CopyTo(Data.AsSpan((int)offset));
        Interlocked.Add(ref _bytesWritten, data.Length);
    }

    public ValueTask FlushAsync(CancellationToken ct = default) => Before(new DeviceCall(BlockOperation.Flush, 0, 0, false), ct);

    public async ValueTask WriteZeroesAsync(long offset, long length, CancellationToken ct = default)
    {
        await Before(new DeviceCall(BlockOperation.WriteZeroes, offset, length, false), ct);
        lock (Data)
            Data.AsSpan((int)offset, (int)length).Clear();
    }

    public ValueTask TrimAsync(long offset, long length, CancellationToken ct = default) =>
        Before(new DeviceCall(BlockOperation.Trim, offset, length, false), ct);

    public ValueTask DisposeAsync()
    {
        Disposed = true;
        return ValueTask.CompletedTask;
    }

    private ValueTask Before(DeviceCall call, CancellationToken ct)
    {
        if (FailWith is { } error)
            throw new BlockDeviceException(error, $"injected {error}");
        Calls.Enqueue(call);
        return BeforeOperation?.Invoke(call, ct) ?? ValueTask.CompletedTask;
    }
}
