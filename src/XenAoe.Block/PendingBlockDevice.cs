namespace XenAoe.Block;

/// <summary>
/// A block device whose backing device arrives later: its size is known up front (a migration destination learns it from the
/// source) so a client can connect and probe, while requests wait until <see cref="Activate"/> supplies the device or
/// <see cref="Fail"/> gives up. The wait is the point: a migrated VM resumes on the destination before the source has closed
/// its mirror, and its first I/O must neither fail nor reach a disk someone else still writes. Reads before activation go to
/// <paramref name="preview"/> when one is given (QEMU reads a disk's first sector while it starts, before any VM runs there).
/// </summary>
/// <remarks>Thread-safe. The activated device and the preview stay their supplier's: disposing this one only fails requests still waiting.</remarks>
public sealed class PendingBlockDevice(long size, bool readOnly = false, IBlockDevice? preview = null) : IBlockDevice
{
    private readonly TaskCompletionSource<IBlockDevice> _device = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public long Size { get; } = size;

    public bool ReadOnly { get; } = readOnly;

    /// <summary>True once a device was supplied.</summary>
    public bool IsActive => _device.Task.IsCompletedSuccessfully;

    /// <summary>Supplies the device; waiting and later requests go to it. Its size must match.</summary>
    public void Activate(IBlockDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.Size != Size)
            throw new ArgumentException($"the device has {device.Size} bytes, the pending one promised {Size}", nameof(device));
        if (!_device.TrySetResult(device))
            throw new InvalidOperationException("the pending device was already activated or failed");
    }

    /// <summary>Fails every waiting and later request with <see cref="BlockError.Io"/> and <paramref name="reason"/>.</summary>
    public void Fail(string reason) => _device.TrySetException(new BlockDeviceException(BlockError.Io, reason));

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken ct = default)
    {
        var device = _device.Task.IsCompleted || preview is null ? await DeviceAsync(ct).ConfigureAwait(false) : preview;
        await device.ReadAsync(offset, buffer, ct).ConfigureAwait(false);
    }

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool forceUnitAccess = false, CancellationToken ct = default) =>
        await (await DeviceAsync(ct).ConfigureAwait(false)).WriteAsync(offset, data, forceUnitAccess, ct).ConfigureAwait(false);

    public async ValueTask FlushAsync(CancellationToken ct = default) =>
        await (await DeviceAsync(ct).ConfigureAwait(false)).FlushAsync(ct).ConfigureAwait(false);

    public async ValueTask WriteZeroesAsync(long offset, long length, CancellationToken ct = default) =>
        await (await DeviceAsync(ct).ConfigureAwait(false)).WriteZeroesAsync(offset, length, ct).ConfigureAwait(false);

    public async ValueTask TrimAsync(long offset, long length, CancellationToken ct = default) =>
        await (await DeviceAsync(ct).ConfigureAwait(false)).TrimAsync(offset, length, ct).ConfigureAwait(false);

    private ValueTask<IBlockDevice> DeviceAsync(CancellationToken ct) =>
        _device.Task.IsCompletedSuccessfully ? new(_device.Task.Result) : new(_device.Task.WaitAsync(ct));

    public ValueTask DisposeAsync()
    {
        Fail("the pending device was closed before it was activated");
        return ValueTask.CompletedTask;
    }
}
