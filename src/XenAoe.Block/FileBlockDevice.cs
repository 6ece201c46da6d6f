using Microsoft.Win32.SafeHandles;

namespace XenAoe.Block;

/// <summary>A block device over a local file, through pread/pwrite: the reference device for tests and a local scratch disk.</summary>
public sealed class FileBlockDevice : IBlockDevice
{
    private readonly SafeFileHandle _handle;

    private FileBlockDevice(SafeFileHandle handle, long size, bool readOnly)
    {
        _handle = handle;
        Size = size;
        ReadOnly = readOnly;
    }

    public long Size { get; }
    public bool ReadOnly { get; }

    public static FileBlockDevice Open(string path, bool readOnly = false)
    {
        var handle = File.OpenHandle(path, FileMode.Open, readOnly ? FileAccess.Read : FileAccess.ReadWrite, FileShare.ReadWrite);
        return new FileBlockDevice(handle, RandomAccess.GetLength(handle) & ~(long)(IBlockDevice.SectorSize - 1), readOnly);
    }

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken ct = default)
    {
        Check(offset, buffer.Length, write: false);
        var done = 0;
        while (done < buffer.Length)
        {
            var n = RandomAccess.Read(_handle, buffer.Span[done..], offset + done);
            if (n == 0)
            {
                buffer.Span[done..].Clear();
                break;
            }
            done += n;
        }
        return ValueTask.CompletedTask;
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool forceUnitAccess = false, CancellationToken ct = default)
    {
        Check(offset, data.Length, write: true);
        try
        {
            RandomAccess.Write(_handle, data.Span, offset);
        }
        catch (IOException e) when (e is not BlockDeviceException)
        {
            throw Translate(e);
        }
        return forceUnitAccess ? FlushAsync(ct) : ValueTask.CompletedTask;
    }

    public ValueTask FlushAsync(CancellationToken ct = default)
    {
        try
        {
            RandomAccess.FlushToDisk(_handle);
        }
        catch (IOException e) when (e is not BlockDeviceException)
        {
            throw Translate(e);
        }
        return ValueTask.CompletedTask;
    }

    public ValueTask WriteZeroesAsync(long offset, long length, CancellationToken ct = default)
    {
        Check(offset, length, write: true);
        var zeros = new byte[Math.Min(length, 1 << 20)];
        try
        {
            for (long done = 0; done < length; done += zeros.Length)
                RandomAccess.Write(_handle, zeros.AsSpan(0, (int)Math.Min(zeros.Length, length - done)), offset + done);
        }
        catch (IOException e) when (e is not BlockDeviceException)
        {
            throw Translate(e);
        }
        return ValueTask.CompletedTask;
    }

    public ValueTask TrimAsync(long offset, long length, CancellationToken ct = default)
    {
        Check(offset, length, write: true);
        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        _handle.Dispose();
        return ValueTask.CompletedTask;
    }

    private void Check(long offset, long length, bool write)
    {
        if (write && ReadOnly)
            throw new BlockDeviceException(BlockError.NotPermitted, "the device is read-only");
        if (!BlockRange.IsValid(offset, length, Size))
            throw BlockRange.Invalid("file", offset, length, Size);
    }

    /// <summary>ENOSPC surfaces as an IOException whose HResult carries the errno (28).</summary>
    private static BlockDeviceException Translate(IOException e) =>
        new((e.HResult & 0xFFFF) == 28 ? BlockError.NoSpace : BlockError.Io, e.Message, e);
}
