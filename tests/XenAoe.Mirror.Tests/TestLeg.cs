using XenAoe.Block;

namespace XenAoe.Mirror.Tests;

/// <summary>An in-memory leg whose bytes outlive the wrapper (so a mirror can be "reassembled"), with switchable failures.</summary>
internal sealed class TestLeg(byte[] disk) : IBlockDevice
{
    public byte[] Disk { get; } = disk;
    public long Size => Disk.Length;
    public bool ReadOnly => false;

    /// <summary>Fail every I/O with this error (null: work).</summary>
    public BlockError? FailWith { get; set; }
    public long BytesWritten;

    public static TestLeg New(long size) => new(new byte[size]);

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken ct = default)
    {
        Fail();
        Disk.AsSpan((int)offset, buffer.Length).CopyTo(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool forceUnitAccess = false, CancellationToken ct = default)
    {
        await Task.Yield(); // complete asynchronously, as the network does
        Fail();
        data.Span.CopyTo(Disk.AsSpan((int)offset));
        Interlocked.Add(ref BytesWritten, data.Length);
    }

    public ValueTask FlushAsync(CancellationToken ct = default)
    {
        Fail();
        return ValueTask.CompletedTask;
    }

    public ValueTask WriteZeroesAsync(long offset, long length, CancellationToken ct = default)
    {
        Fail();
        Disk.AsSpan((int)offset, (int)length).Clear();
        return ValueTask.CompletedTask;
    }

    public ValueTask TrimAsync(long offset, long length, CancellationToken ct = default) => ValueTask.CompletedTask;

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private void Fail()
    {
        if (FailWith is { } error)
            throw new BlockDeviceException(error, $"injected {error}");
    }
}
