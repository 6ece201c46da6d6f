using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace XenAoe.Storage;

/// <summary>
/// The bytes behind one volume: a file or a block device opened through libc so the flags are ours
/// (O_DSYNC for write-through), then read and written with <see cref="RandomAccess"/> (pread/pwrite, no allocation).
/// Thread-safe: positional I/O has no shared file offset.
/// </summary>
public sealed class BackingStore : IDisposable
{
    private readonly SafeFileHandle _handle;

    private BackingStore(SafeFileHandle handle, string path, long length, bool readOnly, WriteCacheMode mode)
    {
        _handle = handle;
        Path = path;
        Length = length;
        ReadOnly = readOnly;
        WriteCache = mode;
    }

    public string Path { get; }

    /// <summary>Usable size in bytes (rounded down to whole sectors).</summary>
    public long Length { get; }

    public bool ReadOnly { get; }
    public WriteCacheMode WriteCache { get; }

    /// <summary>Opens a block device (sized by BLKGETSIZE64) or a regular file (sized by its length).</summary>
    public static BackingStore Open(string path, bool readOnly, WriteCacheMode mode)
    {
        var flags = (readOnly ? Interop.ORdOnly : Interop.ORdWr) | Interop.OCloexec
            | (mode == WriteCacheMode.WriteThrough && !readOnly ? Interop.ODsync : 0);
        var fd = Interop.Open(path, flags, 0);
        if (fd < 0)
            ThrowIo($"cannot open {path}", Marshal.GetLastPInvokeError());
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        // BLKGETSIZE64 answers only for block devices (ENOTTY otherwise); a file's size is its length.
        var length = Interop.IoctlGetSize(handle, Interop.BlkGetSize64, out var size) == 0 ? (long)size : RandomAccess.GetLength(handle);
        return new BackingStore(handle, path, length & ~511L, readOnly, mode);
    }

    /// <summary>Reads exactly <paramref name="buffer"/>.Length bytes; a short read past the end fills zeros (sparse files never end early).</summary>
    public void Read(Span<byte> buffer, long offset)
    {
        while (!buffer.IsEmpty)
        {
            var n = RandomAccess.Read(_handle, buffer, offset);
            if (n == 0)
            {
                buffer.Clear();
                return;
            }
            buffer = buffer[n..];
            offset += n;
        }
    }

    /// <summary>Writes all of <paramref name="data"/>; durable on return for write-through volumes.</summary>
    public void Write(ReadOnlySpan<byte> data, long offset) => RandomAccess.Write(_handle, data, offset);

    /// <summary>Makes every completed write durable (fdatasync).</summary>
    public void Flush()
    {
        if (!ReadOnly && Interop.FDataSync(_handle) != 0)
            ThrowIo($"fdatasync {Path}", Marshal.GetLastPInvokeError());
    }

    public void Dispose() => _handle.Dispose();

    [DoesNotReturn]
    private static void ThrowIo(string what, int errno) =>
        throw new IOException($"{what}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})", errno);
}
