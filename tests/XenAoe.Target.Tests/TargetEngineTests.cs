using XenAoe.Aoe;
using XenAoe.Storage;

namespace XenAoe.Target.Tests;

public sealed class TargetEngineTests : IDisposable
{
    private const long VolumeBytes = 1 << 20;
    private readonly string _dir = Directory.CreateTempSubdirectory("xenaoe-target-").FullName;
    private readonly StoragePool _pool;
    private readonly TargetEngine _engine;
    private readonly VolumeSpec _spec;

    public TargetEngineTests()
    {
        _pool = StoragePool.Open(_dir);
        _spec = _pool.Create(new VolumeSpec { Name = "vol", Shelf = 1, Slot = 0, SizeBytes = VolumeBytes });
        _engine = new TargetEngine(new TargetOptions(), _pool.Save);
        _engine.Export(_spec, _pool.OpenData(_spec));
    }

    public void Dispose()
    {
        foreach (var v in _engine.Volumes)
            v.Store.Dispose();
        _pool.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private List<byte[]> Send(byte[] frame, LinkInfo? link = null)
    {
        var sink = new ListSink(Frames.Jumbo.FrameSize);
        _engine.Handle(frame, link ?? Frames.Jumbo, ref sink);
        return sink.Replies;
    }

    private byte[] SendOne(byte[] frame, LinkInfo? link = null) => Assert.Single(Send(frame, link));

    private static (AoeHeader Header, AtaHeader Ata) ParseAta(byte[] reply)
    {
        Assert.True(AoeHeader.TryRead(reply, out var header));
        Assert.True(AtaHeader.TryRead(reply, out var ata));
        return (header, ata);
    }

    [Fact]
    public void Identify_reports_the_volume_size_lba48_and_flush_support()
    {
        var reply = SendOne(Frames.Ata(AtaCommands.IdentifyDevice, 0, 1));
        var (header, ata) = ParseAta(reply);
        Assert.Equal(AoeFlags.Response, header.Flags);
        Assert.Equal(AtaStatus.Ready, ata.CommandOrStatus);
        var page = reply.AsSpan(AoeProtocol.AtaHeaderLength, IdentifyDevice.Length);
        Assert.Equal((ulong)(VolumeBytes / 512), IdentifyDevice.ReadSectors(page));
        Assert.Equal((ulong)(VolumeBytes / 512), IdentifyDevice.ReadWord(page, 60) | (ulong)IdentifyDevice.ReadWord(page, 61) << 16);
        Assert.NotEqual(0, IdentifyDevice.ReadWord(page, 83) & (1 << 10 | 1 << 12 | 1 << 13));
        Assert.Equal("XenAoE vol", IdentifyDevice.ReadString(page, 27, 40));
    }

    [Fact]
    public void A_written_pattern_reads_back_and_lands_in_the_volume_file()
    {
        var data = new byte[17 * 512];
        new Random(1).NextBytes(data);
        var write = ParseAta(SendOne(Frames.Ata(AtaCommands.WriteSectorsExt, 100, 17, data: data, tag: 0x8000_0002)));
        Assert.Equal(AtaStatus.Ready, write.Ata.CommandOrStatus);

        var reply = SendOne(Frames.Ata(AtaCommands.ReadSectorsExt, 100, 17, tag: 0x8000_0003));
        Assert.Equal(AtaStatus.Ready, ParseAta(reply).Ata.CommandOrStatus);
        Assert.Equal(data, reply.AsSpan(AoeProtocol.AtaHeaderLength, data.Length).ToArray());

        using var file = File.OpenRead(Path.Combine(_dir, "vol.img"));
        var onDisk = new byte[data.Length];
        file.Position = 100 * 512;
        file.ReadExactly(onDisk);
        Assert.Equal(data, onDisk);
    }

    [Fact]
    public void Lba28_requests_ignore_the_device_bits_in_lba3()
    {
        var data = Enumerable.Repeat((byte)0x5A, 512).ToArray();
        SendOne(Frames.Ata(AtaCommands.WriteSectors, 7, 1, data: data, extended: false));
        var reply = SendOne(Frames.Ata(AtaCommands.ReadSectors, 7, 1, extended: false, tag: 9));
        Assert.Equal(0xE0, reply[31] & 0xF0);
        Assert.Equal(data, reply.AsSpan(36, 512).ToArray());
    }

    [Fact]
    public void A_read_past_the_end_is_an_ata_error_not_an_aoe_error()
    {
        var (header, ata) = ParseAta(SendOne(Frames.Ata(AtaCommands.ReadSectorsExt, VolumeBytes / 512 - 1, 2)));
        Assert.Equal(AoeFlags.Response, header.Flags);
        Assert.Equal(AtaStatus.Ready | AtaStatus.Error, ata.CommandOrStatus);
        Assert.Equal(AtaStatus.IdNotFound, ata.ErrorOrFeature);
        Assert.Equal(1, _engine.Counters.OutOfRange);
    }

    [Fact]
    public void More_sectors_than_the_link_carries_are_aborted()
    {
        var (_, ata) = ParseAta(SendOne(Frames.Ata(AtaCommands.ReadSectorsExt, 0, 3), new LinkInfo(Frames.TargetMac, 1500)));
        Assert.Equal(AtaStatus.Abort, ata.ErrorOrFeature);
        Assert.Equal(1, _engine.Counters.TooManySectors);
    }

    [Fact]
    public void A_write_claiming_more_sectors_than_its_frame_holds_writes_nothing()
    {
        var frame = Frames.Ata(AtaCommands.WriteSectorsExt, 0, 4, data: new byte[3 * 512 + 100].AsSpan());
        frame.AsSpan(36).Fill(0xEE);
        var (_, ata) = ParseAta(SendOne(frame));
        Assert.Equal(AtaStatus.Abort, ata.ErrorOrFeature);
        var read = SendOne(Frames.Ata(AtaCommands.ReadSectorsExt, 0, 4, tag: 5));
        Assert.All(read.AsSpan(36, 4 * 512).ToArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public void Every_truncation_of_a_request_is_answered_or_ignored_without_harm()
    {
        var full = Frames.Ata(AtaCommands.WriteSectorsExt, 0, 2, data: new byte[1024]);
        for (var length = 0; length < full.Length; length++)
        {
            var replies = Send(full[..length]);
            if (length < AoeProtocol.HeaderLength)
                Assert.Empty(replies);
            else if (length < AoeProtocol.AtaHeaderLength)
                Assert.Equal(AoeError.BadArgument, (AoeError)Assert.Single(replies)[15]);
            else
                Assert.Equal(AtaStatus.Abort, ParseAta(Assert.Single(replies)).Ata.ErrorOrFeature);
        }
        Assert.Equal(AtaStatus.Ready, ParseAta(SendOne(full)).Ata.CommandOrStatus);
    }

    [Fact]
    public void Every_reply_is_padded_to_the_ethernet_minimum_with_zeros()
    {
        var reply = SendOne(Frames.Ata(AtaCommands.CheckPowerMode, 0, 0));
        Assert.Equal(AoeProtocol.MinimumFrameLength, reply.Length);
        Assert.All(reply[36..], b => Assert.Equal(0, b));
        Assert.Equal(0xFF, reply[26]);
    }

    [Fact]
    public void A_wrong_version_gets_error_5_and_an_unknown_command_error_1()
    {
        var badVersion = Frames.Ata(AtaCommands.IdentifyDevice, 0, 1);
        badVersion[14] = 0x20;
        Assert.Equal((byte)AoeError.UnsupportedVersion, SendOne(badVersion)[15]);
        var unknown = Frames.Header((AoeCommand)0x42, 1, 0, 60);
        var reply = SendOne(unknown);
        Assert.Equal((byte)(0x10 | (byte)AoeFlags.Response | (byte)AoeFlags.Error), reply[14]);
        Assert.Equal((byte)AoeError.UnrecognizedCommand, reply[15]);
    }

    [Fact]
    public void Frames_for_other_targets_responses_and_other_macs_are_ignored()
    {
        Assert.Empty(Send(Frames.Ata(AtaCommands.IdentifyDevice, 0, 1, shelf: 2)));
        var response = Frames.Ata(AtaCommands.IdentifyDevice, 0, 1);
        response[14] |= (byte)AoeFlags.Response;
        Assert.Empty(Send(response));
        var otherMac = Frames.Header(AoeCommand.QueryConfig, 1, 0, 60, destination: MacAddress.Parse("02:00:00:00:00:99"));
        Assert.Empty(Send(otherMac));
        Assert.Equal(3, _engine.Counters.NotForUs);
    }

    [Fact]
    public void Unsupported_ata_commands_are_aborted()
    {
        var (_, ata) = ParseAta(SendOne(Frames.Ata(0xB0, 0, 0)));
        Assert.Equal(AtaStatus.Ready | AtaStatus.Error, ata.CommandOrStatus);
        Assert.Equal(AtaStatus.Abort, ata.ErrorOrFeature);
    }

    [Fact]
    public void Broadcast_discovery_gets_one_reply_per_matching_target()
    {
        var second = _pool.Create(new VolumeSpec { Name = "two", Shelf = 1, Slot = 1, SizeBytes = 4096 });
        _engine.Export(second, _pool.OpenData(second));
        var replies = Send(Frames.Config(ConfigCommand.Read, shelf: 0xFFFF, slot: 0xFF));
        Assert.Equal(2, replies.Count);
        Assert.Equal([0, 1], replies.Select(r => (int)r[18]).Order());
        Assert.Single(Send(Frames.Config(ConfigCommand.Read, shelf: 1, slot: 0xFF)), r => r[18] == 1);
        var config = ConfigHeaderOf(replies[0]);
        Assert.Equal(17, config.SectorCount);
        Assert.Equal(128, config.BufferCount);
    }

    private static ConfigHeader ConfigHeaderOf(byte[] reply)
    {
        Assert.True(ConfigHeader.TryRead(reply, out var config));
        return config;
    }

    [Fact]
    public void Config_string_set_test_and_force_follow_the_ccmd_rules_and_persist()
    {
        Assert.Equal(0, SendOne(Frames.Config(ConfigCommand.SetIfEmpty, "cluster=a"))[15]);
        Assert.Equal((byte)AoeError.ConfigStringPresent, SendOne(Frames.Config(ConfigCommand.SetIfEmpty, "cluster=b"))[15]);
        Assert.Empty(Send(Frames.Config(ConfigCommand.TestExact, "cluster")));
        Assert.Single(Send(Frames.Config(ConfigCommand.TestPrefix, "cluster")));
        Assert.Single(Send(Frames.Config(ConfigCommand.TestExact, "cluster=a")));
        var forced = SendOne(Frames.Config(ConfigCommand.ForceSet, "cluster=b"));
        Assert.Equal("cluster=b", System.Text.Encoding.ASCII.GetString(forced, 32, ConfigHeaderOf(forced).StringLength));
        Assert.Equal("cluster=b", System.Text.Encoding.ASCII.GetString(Convert.FromBase64String(_pool.Get("vol").ConfigString)));
    }

    [Fact]
    public void A_config_string_longer_than_its_frame_is_a_bad_argument()
    {
        var frame = Frames.Config(ConfigCommand.ForceSet, "abc");
        frame[31] = 200;
        Assert.Equal((byte)AoeError.BadArgument, SendOne(frame)[15]);
    }

    [Fact]
    public void A_mac_mask_admits_only_listed_initiators()
    {
        var reply = SendOne(Frames.MacMask(MacMaskCommand.Edit, Frames.HostA, (MacMaskDirective.Add, Frames.HostA)));
        Assert.Equal(1, reply[27]);
        Assert.Empty(Send(Frames.Ata(AtaCommands.IdentifyDevice, 0, 1, source: Frames.HostB)));
        Assert.Single(Send(Frames.Ata(AtaCommands.IdentifyDevice, 0, 1, source: Frames.HostA)));
        Assert.Equal(1, _engine.Counters.MaskedOut);
        var bad = SendOne(Frames.MacMask(MacMaskCommand.Edit, Frames.HostA, (MacMaskDirective.Add, Frames.HostB), ((MacMaskDirective)9, Frames.HostB)));
        Assert.Equal((byte)MacMaskError.BadDirective, bad[26]);
        Assert.Equal(2, bad[27]);
        Assert.Equal(["02:00:00:00:00:0a", "02:00:00:00:00:0b"], _pool.Get("vol").MacMask);
    }

    [Fact]
    public void A_reservation_refuses_io_from_others_with_error_6_until_force_set()
    {
        Assert.Equal(0, SendOne(Frames.Reserve(ReserveCommand.Set, Frames.HostA, Frames.HostA))[15]);
        var fenced = SendOne(Frames.Ata(AtaCommands.WriteSectorsExt, 0, 1, data: new byte[512], source: Frames.HostB));
        Assert.Equal((byte)AoeError.TargetReserved, fenced[15]);
        Assert.Equal((byte)AoeError.TargetReserved, SendOne(Frames.Reserve(ReserveCommand.Set, Frames.HostB, Frames.HostB))[15]);
        Assert.Equal(0, SendOne(Frames.Reserve(ReserveCommand.ForceSet, Frames.HostB, Frames.HostB))[15]);
        Assert.Equal((byte)AoeError.TargetReserved, SendOne(Frames.Ata(AtaCommands.ReadSectorsExt, 0, 1, source: Frames.HostA))[15]);
        Assert.Equal(0, SendOne(Frames.Ata(AtaCommands.ReadSectorsExt, 0, 1, source: Frames.HostB))[15]);
        Assert.Equal(["02:00:00:00:00:0b"], _pool.Get("vol").Reservation);
    }

    [Fact]
    public void A_retransmitted_write_is_answered_but_not_applied_again()
    {
        var first = Enumerable.Repeat((byte)1, 512).ToArray();
        var second = Enumerable.Repeat((byte)2, 512).ToArray();
        var original = Frames.Ata(AtaCommands.WriteSectorsExt, 10, 1, data: first, tag: 0x8000_0100);
        SendOne(original);
        SendOne(Frames.Ata(AtaCommands.WriteSectorsExt, 10, 1, data: second, tag: 0x8000_0101));
        var again = ParseAta(SendOne(original));
        Assert.Equal(AtaStatus.Ready, again.Ata.CommandOrStatus);
        Assert.Equal(1, _engine.Counters.DuplicatesAnswered);
        var read = SendOne(Frames.Ata(AtaCommands.ReadSectorsExt, 10, 1, tag: 0x8000_0102));
        Assert.Equal(second, read.AsSpan(36, 512).ToArray());
    }

    [Fact]
    public void A_write_resent_from_another_nic_of_a_multipath_initiator_is_not_applied_again()
    {
        var first = Enumerable.Repeat((byte)3, 512).ToArray();
        var original = Frames.Ata(AtaCommands.WriteSectorsExt, 30, 1, data: first, tag: 0x8000_0300, source: Frames.HostA);
        SendOne(original);
        SendOne(Frames.Ata(AtaCommands.WriteSectorsExt, 30, 1, data: new byte[512], tag: 0x8000_0301, source: Frames.HostA));
        SendOne(Frames.Ata(AtaCommands.WriteSectorsExt, 30, 1, data: first, tag: 0x8000_0300, source: Frames.HostB));
        Assert.Equal(1, _engine.Counters.DuplicatesAnswered);
        var read = SendOne(Frames.Ata(AtaCommands.ReadSectorsExt, 30, 1, tag: 0x8000_0302));
        Assert.All(read.AsSpan(36, 512).ToArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public void A_new_write_that_reuses_a_tag_with_different_data_is_applied()
    {
        var first = Enumerable.Repeat((byte)1, 512).ToArray();
        var second = (byte[])first.Clone();
        second[^1] = 2; // same first bytes, same tag, same LBA: only the payload tells them apart
        SendOne(Frames.Ata(AtaCommands.WriteSectorsExt, 20, 1, data: first, tag: 0x8000_0200));
        SendOne(Frames.Ata(AtaCommands.WriteSectorsExt, 20, 1, data: second, tag: 0x8000_0200));
        Assert.Equal(0, _engine.Counters.DuplicatesAnswered);
        var read = SendOne(Frames.Ata(AtaCommands.ReadSectorsExt, 20, 1, tag: 0x8000_0201));
        Assert.Equal(second, read.AsSpan(36, 512).ToArray());
    }

    [Fact]
    public void A_state_change_that_cannot_be_saved_is_refused_and_changes_nothing()
    {
        var engine = new TargetEngine(new TargetOptions(), _ => throw new IOException("disk full"));
        engine.Export(_spec, _engine.Volumes[0].Store);
        var sink = new ListSink(Frames.Jumbo.FrameSize);
        engine.Handle(Frames.Reserve(ReserveCommand.ForceSet, Frames.HostA, Frames.HostA), Frames.Jumbo, ref sink);
        Assert.Equal((byte)AoeError.DeviceUnavailable, Assert.Single(sink.Replies)[15]);
        Assert.Empty(engine.Volumes[0].Spec.Reservation);
        sink.Replies.Clear();
        engine.Handle(Frames.Ata(AtaCommands.WriteSectorsExt, 0, 1, data: new byte[512], source: Frames.HostB), Frames.Jumbo, ref sink);
        Assert.Equal(0, Assert.Single(sink.Replies)[15]);
    }

    [Fact]
    public void Flush_really_reaches_the_backing_store()
    {
        var (_, ata) = ParseAta(SendOne(Frames.Ata(AtaCommands.FlushCacheExt, 0, 0)));
        Assert.Equal(AtaStatus.Ready, ata.CommandOrStatus);
        Assert.Equal(1, _engine.Counters.Flushes);
    }
}
