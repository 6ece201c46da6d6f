namespace XenAoe.Initiator.Tests;

public sealed class TagTableTests
{
    [Fact]
    public void Every_tag_has_bit_31_set_and_bit_30_clear()
    {
        var table = new TagTable(64, seed: 12345);
        for (var i = 0; i < 64; i++)
        {
            Assert.True(table.TryAllocate(out _, out var tag));
            Assert.Equal(0x8000_0000u, tag & 0xC000_0000u);
        }
    }

    [Fact]
    public void A_live_tag_resolves_to_its_slot()
    {
        var table = new TagTable(16, seed: 1);
        table.TryAllocate(out var a, out var tagA);
        table.TryAllocate(out var b, out var tagB);
        Assert.True(table.TryResolve(tagA, out var ia));
        Assert.True(table.TryResolve(tagB, out var ib));
        Assert.Equal(a, ia);
        Assert.Equal(b, ib);
        Assert.NotEqual(a, b);
    }

    [Fact]
    public void A_late_reply_for_a_reused_slot_does_not_match_the_new_use()
    {
        var table = new TagTable(1, seed: 7);
        table.TryAllocate(out var index, out var first);
        table.Release(index);
        Assert.False(table.TryResolve(first, out _));
        table.TryAllocate(out var again, out var second);
        Assert.Equal(index, again);
        Assert.NotEqual(first, second);
        Assert.False(table.TryResolve(first, out _));
        Assert.True(table.TryResolve(second, out _));
    }

    [Theory]
    [InlineData(0x0000_0001u)] // the Linux driver's tags (bit 31 clear)
    [InlineData(0xC000_0001u)] // control tags
    [InlineData(0x8000_03FFu)] // an index beyond the table
    [InlineData(0u)]
    public void Foreign_control_and_out_of_range_tags_do_not_resolve(uint tag)
    {
        var table = new TagTable(16, seed: 0);
        for (var i = 0; i < 16; i++)
            table.TryAllocate(out _, out _);
        Assert.False(table.TryResolve(tag, out var index));
        Assert.Equal(-1, index);
    }

    [Fact]
    public void A_full_table_refuses_until_a_slot_is_released()
    {
        var table = new TagTable(4, seed: 0);
        for (var i = 0; i < 4; i++)
            Assert.True(table.TryAllocate(out _, out _));
        Assert.True(table.IsFull);
        Assert.False(table.TryAllocate(out _, out _));
        table.Release(2);
        Assert.Equal(3, table.Live);
        Assert.True(table.TryAllocate(out var index, out _));
        Assert.Equal(2, index);
    }

    [Fact]
    public void A_slot_reused_many_times_does_not_repeat_a_tag_soon()
    {
        var table = new TagTable(1, seed: 99);
        var seen = new HashSet<uint>();
        for (var i = 0; i < 100_000; i++)
        {
            table.TryAllocate(out var index, out var tag);
            Assert.True(seen.Add(tag));
            table.Release(index);
        }
    }

    [Fact]
    public void Different_seeds_give_different_tags()
    {
        var a = new TagTable(8, seed: 1);
        var b = new TagTable(8, seed: 2);
        a.TryAllocate(out _, out var tagA);
        b.TryAllocate(out _, out var tagB);
        Assert.NotEqual(tagA, tagB);
    }

    [Fact]
    public void Releasing_a_free_slot_is_a_bug_and_throws()
    {
        var table = new TagTable(4, seed: 0);
        Assert.Throws<InvalidOperationException>(() => table.Release(1));
    }
}
