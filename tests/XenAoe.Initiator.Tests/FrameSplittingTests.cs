using XenAoe.Aoe;

namespace XenAoe.Initiator.Tests;

public sealed class FrameSplittingTests
{
    [Theory]
    [InlineData(1, 17)]
    [InlineData(17, 17)]
    [InlineData(18, 17)]
    [InlineData(16384, 17)] // 8 MiB at MTU 9000
    [InlineData(2048, 2)] // 1 MiB at MTU 1500
    [InlineData(5, 255)]
    public void A_request_is_cut_into_frames_that_cover_every_sector_once(int sectors, int perFrame)
    {
        var request = new IoRequest();
        request.Start(IoKind.Read, lba: 1000, new byte[sectors * 512]);
        var covered = new int[sectors];
        var frames = 0;
        while (request.TryTake(perFrame, out var offset, out var count))
        {
            Assert.InRange(count, 1, perFrame);
            for (var i = offset; i < offset + count; i++)
                covered[i]++;
            frames++;
        }
        Assert.All(covered, c => Assert.Equal(1, c));
        Assert.Equal((sectors + perFrame - 1) / perFrame, frames);
        Assert.False(request.HasUntaken);
    }

    [Fact]
    public void Frames_follow_the_size_of_the_path_each_one_goes_to()
    {
        var request = new IoRequest();
        request.Start(IoKind.Write, lba: 0, new byte[40 * 512]);
        Assert.True(request.TryTake(17, out var o1, out var c1));
        Assert.True(request.TryTake(2, out var o2, out var c2));
        Assert.True(request.TryTake(17, out var o3, out var c3));
        Assert.True(request.TryTake(17, out var o4, out var c4));
        Assert.Equal([(0, 17), (17, 2), (19, 17), (36, 4)], [(o1, c1), (o2, c2), (o3, c3), (o4, c4)]);
        Assert.False(request.TryTake(17, out _, out _));
    }

    [Fact]
    public void A_range_given_back_is_sent_again_in_smaller_frames_before_the_rest()
    {
        var request = new IoRequest();
        request.Start(IoKind.Read, lba: 0, new byte[40 * 512]);
        request.TryTake(17, out var offset, out var count);
        request.GiveBack(offset, count); // no path could carry 17 sectors any more
        var taken = new List<(int, int)>();
        while (request.TryTake(2, out var o, out var c))
            taken.Add((o, c));
        // The 17 given-back sectors first (8 frames of 2 and one of 1), then the 23 never sent.
        Assert.Equal([.. Enumerable.Range(0, 8).Select(i => (i * 2, 2)), (16, 1)], taken.Take(9));
        Assert.Equal(9 + 12, taken.Count);
        Assert.Equal(40, taken.Sum(t => t.Item2));
        Assert.Equal(40, taken.SelectMany(t => Enumerable.Range(t.Item1, t.Item2)).Distinct().Count());
    }

    [Fact]
    public void A_flush_is_one_frame_of_zero_sectors()
    {
        var request = new IoRequest();
        request.Start(IoKind.Flush, 0, Memory<byte>.Empty);
        Assert.Equal(1, request.Remaining);
        Assert.True(request.TryTake(17, out _, out var count));
        Assert.Equal(0, count);
        Assert.False(request.TryTake(17, out _, out _));
    }

    [Fact]
    public void A_frame_carries_its_lba_in_48_bits_and_its_data_after_the_ata_header()
    {
        var frame = new byte[9014];
        var data = Replies.Pattern(0x1234_5678_9AUL, 3);
        var length = Frames.WriteAta(frame, new MacAddress(0x020000000002), new MacAddress(0x020000000001), new AoeAddress(7, 3), 0x8000_1234,
            AtaCommands.WriteSectorsExt, write: true, 0x1234_5678_9AUL, 3, data);
        Assert.Equal(36 + 3 * 512, length);
        Assert.True(AoeHeader.TryRead(frame, out var header));
        Assert.Equal((ushort)7, header.Shelf);
        Assert.Equal((byte)3, header.Slot);
        Assert.Equal(0x8000_1234u, header.Tag);
        Assert.False(header.IsResponse);
        Assert.True(AtaHeader.TryRead(frame, out var ata));
        Assert.Equal(AtaFlags.Extended | AtaFlags.Write, ata.Flags);
        Assert.Equal(0x1234_5678_9AUL, ata.Lba);
        Assert.Equal((byte)3, ata.SectorCount);
        Assert.Equal(data, frame.AsSpan(36, data.Length).ToArray());
    }
}
