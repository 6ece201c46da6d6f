namespace XenAoe.Block;

/// <summary>Copies a raw disk image file onto a block device: how a new VM disk gets its operating system.</summary>
public static class BlockImage
{
    private const int Chunk = 4 << 20;

    /// <summary>Requests in flight: enough to keep both legs of a mirror busy over the network.</summary>
    private const int Parallel = 4;

    /// <summary>
    /// Writes the whole of <paramref name="imagePath"/> to the start of <paramref name="device"/> (a last partial sector is padded
    /// with zeros), then flushes. <paramref name="progress"/> gets the bytes written so far. Returns the bytes written.
    /// </summary>
    /// <exception cref="ArgumentException">The image is larger than the device.</exception>
    public static async Task<long> WriteAsync(string imagePath, IBlockDevice device, IProgress<long>? progress = null, CancellationToken ct = default)
    {
        using var image = File.OpenHandle(imagePath, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.Asynchronous);
        var length = RandomAccess.GetLength(image);
        var padded = (length + IBlockDevice.SectorSize - 1) / IBlockDevice.SectorSize * IBlockDevice.SectorSize;
        if (padded > device.Size)
            throw new ArgumentException($"the image {imagePath} ({length} bytes) is larger than the device ({device.Size} bytes)");
        long next = 0, done = 0;
        var workers = Enumerable.Range(0, Parallel).Select(async _ =>
        {
            var buffer = new byte[Chunk];
            while (true)
            {
                var offset = Interlocked.Add(ref next, Chunk) - Chunk;
                if (offset >= padded)
                    return;
                var size = (int)Math.Min(Chunk, padded - offset);
                var read = 0;
                while (read < size && offset + read < length)
                {
                    var n = await RandomAccess.ReadAsync(image, buffer.AsMemory(read, size - read), offset + read, ct).ConfigureAwait(false);
                    if (n == 0)
                        break;
                    read += n;
                }
                buffer.AsSpan(read, size - read).Clear();
                await device.WriteAsync(offset, buffer.AsMemory(0, size), ct: ct).ConfigureAwait(false);
                progress?.Report(Interlocked.Add(ref done, size));
            }
        });
        await Task.WhenAll(workers).ConfigureAwait(false);
        await device.FlushAsync(ct).ConfigureAwait(false);
        return padded;
    }
}
