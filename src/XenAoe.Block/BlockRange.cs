namespace XenAoe.Block;

/// <summary>The one rule every block device applies to a request: whole sectors, inside the device.</summary>
public static class BlockRange
{
    public static bool IsValid(long offset, long length, long size) =>
        offset >= 0 && length >= 0 && offset <= size - length && ((offset | length) & (IBlockDevice.SectorSize - 1)) == 0;

    public static BlockDeviceException Invalid(string device, long offset, long length, long size) =>
        new(BlockError.Invalid, $"{device}: request at {offset} for {length} bytes is unaligned or past the end ({size} bytes)");
}
