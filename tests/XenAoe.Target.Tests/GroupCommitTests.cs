using XenAoe.Aoe;
using XenAoe.Storage;

namespace XenAoe.Target.Tests;

/// <summary>Which replies wait for a sync, what they wait for, and that a group costs one fdatasync per volume.</summary>
public sealed class GroupCommitTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("xenaoe-commit-").FullName;
    private readonly StoragePool _pool;
    private readonly TargetEngine _engine;

    public GroupCommitTests()
    {
        _pool = StoragePool.Open(_dir);
        _engine = new TargetEngine(new TargetOptions(), _pool.Save);
        Export("through", slot: 0, WriteCacheMode.WriteThrough);
        Export("back", slot: 1, WriteCacheMode.WriteBack);
    }

    public void Dispose()
    {
        foreach (var v in _engine.Volumes)
            v.Store.Dispose();
        _pool.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private ExportedVolume Export(string name, byte slot, WriteCacheMode mode)
    {
        var spec = _pool.Create(new VolumeSpec { Name = name, Shelf = 1, Slot = slot, SizeBytes = 1 << 20, WriteCache = mode });
        return _engine.Export(spec, _pool.OpenData(spec));
    }

    private ListSink Send(params byte[][] frames)
    {
        var sink = new ListSink(Frames.Jumbo.FrameSize);
        foreach (var frame in frames)
            _engine.Handle(frame, Frames.Jumbo, ref sink);
        return sink;
    }

    private static byte[] Write(byte slot, ulong lba, byte fill, uint tag) =>
        Frames.Ata(AtaCommands.WriteSectorsExt, lba, 1, slot: slot, data: Enumerable.Repeat(fill, 512).ToArray(), tag: tag);

    [Fact]
    public void A_write_through_write_is_answered_only_after_a_sync_covering_that_write()
    {
        var store = _engine.Find("through")!.Store;
        var sink = Send(Write(0, 1, 1, 0x8000_0001), Write(0, 2, 2, 0x8000_0002));

        Assert.Equal([new PendingSync(store, 1, 1), new PendingSync(store, 2, 2)], sink.Syncs);
        Assert.All(sink.Replies, r => Assert.Equal(AtaStatus.Ready, r[27]));
        Assert.Equal(2, store.WriteSequence);
        Assert.Equal(SyncOutcome.Covered, store.MakeDurable(1, 2));
    }

    [Fact]
    public void Reads_and_write_back_writes_leave_at_once()
    {
        var sink = Send(Write(1, 1, 1, 0x8000_0001), Frames.Ata(AtaCommands.ReadSectorsExt, 1, 1, slot: 0, tag: 0x8000_0002));

        Assert.Equal([null, null], sink.Syncs);
        Assert.Equal(1, _engine.Find("back")!.Store.WriteSequence);
    }

    [Fact]
    public void A_flush_waits_for_every_write_completed_before_it()
    {
        var store = _engine.Find("back")!.Store;
        var sink = Send(Write(1, 1, 1, 0x8000_0001), Write(1, 2, 2, 0x8000_0002), Frames.Ata(AtaCommands.FlushCacheExt, 0, 0, slot: 1, tag: 0x8000_0003));

        Assert.Equal(new PendingSync(store, 2, 2), sink.Syncs[2]);
        Assert.Equal(AtaStatus.Ready, sink.Replies[2][27]);
        Assert.Equal(1, _engine.Counters.Flushes);
    }

    [Fact]
    public void A_retransmitted_write_through_write_waits_for_its_original()
    {
        var store = _engine.Find("through")!.Store;
        var original = Write(0, 5, 7, 0x8000_0010);
        var sink = Send(original, Write(0, 6, 8, 0x8000_0011), original);

        Assert.Equal(1, _engine.Counters.DuplicatesAnswered);
        Assert.Equal(new PendingSync(store, 1, 1), sink.Syncs[2]);
        Assert.Equal(2, store.WriteSequence);
    }

    [Fact]
    public void A_group_costs_one_fdatasync_per_volume_and_none_when_already_covered()
    {
        var counters = new TargetCounters();
        using var group = new CommitGroup(64, counters);
        var through = _engine.Find("through")!.Store;
        var back = _engine.Find("back")!.Store;
        var reply = new byte[AoeProtocol.MinimumFrameLength];
        reply[27] = AtaStatus.Ready;
        for (var i = 0; i < 10; i++)
        {
            group.Add(reply, new PendingSync(through, through.Write(new byte[512], i * 512), through.WriteSequence));
            group.Add(reply, new PendingSync(back, back.Write(new byte[512], i * 512), back.WriteSequence));
        }

        group.Complete();
        Assert.Equal(2, counters.Syncs);
        Assert.Equal(20, counters.SyncedReplies);
        Assert.Equal(20, group.Replies.Count);
        for (var i = 0; i < group.Replies.Count; i++)
            Assert.Equal(AtaStatus.Ready, group.Replies.Frame(i)[27]);

        group.Clear();
        group.Add(reply, new PendingSync(through, 3, 10));
        group.Complete();
        Assert.Equal(2, counters.Syncs);
    }

    [Fact]
    public void A_full_group_refuses_another_reply()
    {
        using var group = new CommitGroup(1, new TargetCounters());
        var store = _engine.Find("through")!.Store;
        group.Add(new byte[AoeProtocol.MinimumFrameLength], new PendingSync(store, 0, 0));

        Assert.True(group.IsFull);
        Assert.Throws<InvalidOperationException>(() => group.Add(new byte[AoeProtocol.MinimumFrameLength], new PendingSync(store, 0, 0)));
    }

    [Fact]
    public void A_closed_store_fails_the_replies_that_wait_for_it()
    {
        var spec = _pool.Create(new VolumeSpec { Name = "gone", Shelf = 2, Slot = 0, SizeBytes = 1 << 20 });
        var store = _pool.OpenData(spec);
        var sequence = store.Write(new byte[512], 0);
        store.Dispose();
        var reply = new byte[AoeProtocol.MinimumFrameLength];
        reply[27] = AtaStatus.Ready;

        new PendingSync(store, sequence, sequence).Complete(reply);

        Assert.Equal(AtaStatus.Ready | AtaStatus.Error, reply[27]);
        Assert.Equal(AtaStatus.Uncorrectable, reply[25]);
    }
}
