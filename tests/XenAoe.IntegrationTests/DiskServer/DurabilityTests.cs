using System.Buffers.Binary;
using XenAoe.Initiator;
using XenAoe.IntegrationTests.Initiator;
using Xunit.Abstractions;

namespace XenAoe.IntegrationTests.DiskServer;

/// <summary>
/// Write-through volumes under our initiator, on a pool on a disk-backed file system: an acknowledged write has left the page
/// cache (group commit synced it before the reply), and every acknowledged write is there after the disk server is killed.
/// </summary>
[Trait("Category", "Integration")]
public sealed class DurabilityTests(ITestOutputHelper output)
{
    /// <summary>Disk-backed on this machine and on Debian's defaults (/tmp may be a tmpfs, where nothing is ever written back).</summary>
    private const string DiskBackedDirectory = "/var/tmp";

    private const int BlockBytes = 8 << 10;
    private const int Blocks = 2048;
    private const int Writers = 32;

    [Fact]
    public async Task Every_acknowledged_write_survives_a_kill_of_the_disk_server_under_a_write_load()
    {
        var format = new DriveInfo(DiskBackedDirectory).DriveFormat;
        Assert.True(format is not ("tmpfs" or "ramfs"), $"{DiskBackedDirectory} is on {format}: the test needs a disk-backed file system");
        await using var lab = await InitiatorLab.CreateAsync();
        await lab.StartOurTargetAsync("32M", DiskBackedDirectory);
        var disk = lab.Disk!;

        // Acknowledged means synced: once every write of a burst is answered, none of the file's pages is dirty or being written.
        var initiator = lab.StartInitiator(new AoeInitiatorOptions { MaxWindow = 64 });
        var device = await initiator.OpenAsync(InitiatorLab.Address);
        var acked = new long[Blocks];
        var generation = 0L;
        await Task.WhenAll(Enumerable.Range(0, Writers).Select(async w =>
        {
            for (var block = w; block < 512; block += Writers)
                await WriteBlockAsync(device, block, Interlocked.Increment(ref generation), acked, CancellationToken.None);
        }));
        var cache = Interop.CachestatOf(lab.VolumeFile);
        var counters = await disk.CountersAsync();
        output.WriteLine($"512 writes, 32 in flight: {counters["syncs"]} fdatasyncs for {counters["synced_replies"]} replies; page cache {cache.Cached} pages, {cache.Dirty} dirty, {cache.Writeback} under writeback");
        Assert.Equal(0UL, cache.Dirty);
        Assert.Equal(0UL, cache.Writeback);
        Assert.True(counters["syncs"] * 2 <= counters["synced_replies"],
            $"Expected writes in flight together to share fdatasyncs: {counters["syncs"]} for {counters["synced_replies"]} replies");

        // A write load over 2048 blocks, each writer owning its own blocks so each block has one write in flight at most; the
        // disk server is killed in the middle of it.
        using var stop = new CancellationTokenSource();
        var load = Task.WhenAll(Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
        {
            var random = new Random(w);
            while (!stop.IsCancellationRequested)
            {
                var block = w + Writers * random.Next(Blocks / Writers);
                try
                {
                    await WriteBlockAsync(device, block, Interlocked.Increment(ref generation), acked, stop.Token);
                }
                catch (OperationCanceledException)
                {
                    // The disk server is gone: this write was never acknowledged, so it may or may not have landed.
                }
            }
        })));
        await Eventually.TrueAsync(() => Interlocked.Read(ref generation) > 4000, TimeSpan.FromSeconds(60),
            "the load to have issued 4000 writes");
        await disk.StopAsync(Signal.Kill);
        var ackedAtKill = acked.Count(g => g != 0);
        await stop.CancelAsync();
        await load;
        await device.DisposeAsync();
        await initiator.DisposeAsync();

        // Read back through the restarted disk server: every block holds its last acknowledged write or a later one.
        await disk.StartAsync();
        initiator = lab.StartInitiator(new AoeInitiatorOptions { MaxWindow = 64 });
        device = await initiator.OpenAsync(InitiatorLab.Address);
        var back = new byte[Blocks * BlockBytes];
        await InitiatorLab.ReadAsync(device, 0, back, 64 << 10, inFlight: 8);
        var checkedBlocks = 0;
        for (var block = 0; block < Blocks; block++)
        {
            if (acked[block] == 0)
                continue;
            for (var sector = 0; sector < BlockBytes / 512; sector++)
            {
                var stamp = back.AsSpan(block * BlockBytes + sector * 512, 512);
                var (stampBlock, stampGeneration) = (BinaryPrimitives.ReadInt32LittleEndian(stamp), BinaryPrimitives.ReadInt64LittleEndian(stamp[8..]));
                Assert.True(stampBlock == block && stampGeneration >= acked[block],
                    $"Block {block} sector {sector}: acknowledged generation {acked[block]}, read back block {stampBlock} generation {stampGeneration}");
            }
            checkedBlocks++;
        }
        output.WriteLine($"killed after {Interlocked.Read(ref generation)} writes issued; {ackedAtKill} blocks acknowledged at the kill, {checkedBlocks} checked after the restart");
        Assert.True(checkedBlocks >= 512, $"Expected at least the 512 blocks of the first burst to be checked, got {checkedBlocks}");
        await device.DisposeAsync();
    }

    /// <summary>Writes a block whose every sector carries (block, generation); records the generation once acknowledged.</summary>
    private static async Task WriteBlockAsync(AoeDevice device, int block, long generation, long[] acked, CancellationToken ct)
    {
        var data = new byte[BlockBytes];
        for (var sector = 0; sector < BlockBytes / 512; sector++)
        {
            var stamp = data.AsSpan(sector * 512, 512);
            BinaryPrimitives.WriteInt32LittleEndian(stamp, block);
            BinaryPrimitives.WriteInt32LittleEndian(stamp[4..], sector);
            BinaryPrimitives.WriteInt64LittleEndian(stamp[8..], generation);
        }
        await device.WriteAsync((long)block * BlockBytes, data, ct: ct);
        // One write in flight per block, so the acknowledged generations of a block only grow.
        Volatile.Write(ref acked[block], generation);
    }
}
