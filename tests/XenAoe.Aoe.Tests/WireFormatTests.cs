namespace XenAoe.Aoe.Tests;

public sealed class WireFormatTests
{
    private static byte[] AtaFrame()
    {
        var frame = new byte[AoeProtocol.AtaHeaderLength + 512];
        new AoeHeader
        {
            Destination = MacAddress.Parse("02:00:00:00:00:01"),
            Source = MacAddress.Parse("52:54:00:ab:cd:ef"),
            Version = 1,
            Flags = AoeFlags.Response,
            Error = AoeError.None,
            Shelf = 0x1234,
            Slot = 0x56,
            Command = AoeCommand.Ata,
            Tag = 0x8765_4321,
        }.Write(frame);
        new AtaHeader { Flags = AtaFlags.Extended | AtaFlags.Write, SectorCount = 1, CommandOrStatus = AtaCommands.WriteSectorsExt, Lba = 0x0000_BEEF_CAFE_F00D }.Write(frame);
        return frame;
    }

    [Fact]
    public void The_common_header_round_trips_with_big_endian_fields()
    {
        var frame = AtaFrame();
        Assert.Equal([0x88, 0xA2], frame[12..14]);
        Assert.Equal(0x18, frame[14]);
        Assert.Equal([0x12, 0x34, 0x56], frame[16..19]);
        Assert.True(AoeHeader.TryRead(frame, out var header));
        Assert.Equal("52:54:00:ab:cd:ef", header.Source.ToString());
        Assert.Equal((ushort)0x1234, header.Shelf);
        Assert.Equal(0x56, header.Slot);
        Assert.Equal(0x8765_4321u, header.Tag);
        Assert.True(header.IsResponse);
    }

    [Fact]
    public void The_ata_lba_is_little_endian_and_48_bits_with_the_extended_flag()
    {
        var frame = AtaFrame();
        Assert.Equal([0x0D, 0xF0, 0xFE, 0xCA, 0xEF, 0xBE], frame[28..34]);
        Assert.True(AtaHeader.TryRead(frame, out var ata));
        Assert.Equal(0x0000_BEEF_CAFE_F00DUL, ata.Lba);
        Assert.True(ata.IsWrite && ata.IsExtended);
    }

    [Fact]
    public void An_lba28_address_masks_the_device_bits()
    {
        var frame = AtaFrame();
        new AtaHeader { SectorCount = 1, CommandOrStatus = AtaCommands.ReadSectors, Lba = 0x0ABC_DEF1 }.Write(frame);
        Assert.Equal(0xEA, frame[31]);
        Assert.True(AtaHeader.TryRead(frame, out var ata));
        Assert.Equal(0x0ABC_DEF1UL, ata.Lba);
    }

    [Fact]
    public void Every_truncation_is_rejected_by_the_reader_that_needs_the_missing_bytes()
    {
        var frame = AtaFrame();
        for (var length = 0; length <= frame.Length; length++)
        {
            var prefix = frame.AsSpan(0, length);
            Assert.Equal(length >= AoeProtocol.HeaderLength, AoeHeader.TryRead(prefix, out _));
            Assert.Equal(length >= AoeProtocol.AtaHeaderLength, AtaHeader.TryRead(prefix, out _));
            Assert.Equal(length >= AoeProtocol.ConfigHeaderLength, ConfigHeader.TryRead(prefix, out _));
            Assert.Equal(length >= AoeProtocol.MacMaskHeaderLength, MacMaskHeader.TryRead(prefix, out _));
            Assert.Equal(length >= AoeProtocol.ReserveHeaderLength, ReserveHeader.TryRead(prefix, out _));
        }
    }

    [Fact]
    public void A_frame_of_another_ethertype_is_not_aoe()
    {
        var frame = AtaFrame();
        frame[13] = 0xA3;
        Assert.False(AoeHeader.TryRead(frame, out _));
    }

    [Fact]
    public void A_response_header_swaps_addresses_and_keeps_the_tag()
    {
        var request = AtaFrame();
        var reply = new byte[60];
        var us = MacAddress.Parse("02:00:00:00:00:09");
        AoeHeader.WriteResponse(reply, request, us, 7, 3, AoeError.TargetReserved);
        Assert.True(AoeHeader.TryRead(reply, out var header));
        Assert.Equal(MacAddress.Parse("52:54:00:ab:cd:ef"), header.Destination);
        Assert.Equal(us, header.Source);
        Assert.Equal(AoeFlags.Response | AoeFlags.Error, header.Flags);
        Assert.Equal(AoeError.TargetReserved, header.Error);
        Assert.Equal(((ushort)7, (byte)3), (header.Shelf, header.Slot));
        Assert.Equal(0x8765_4321u, header.Tag);
    }

    [Fact]
    public void The_config_argument_packs_version_and_ccmd_into_one_byte()
    {
        var frame = new byte[AoeProtocol.ConfigHeaderLength];
        new ConfigHeader { BufferCount = 128, FirmwareVersion = 0x0100, SectorCount = 17, AoeVersion = 1, Command = ConfigCommand.ForceSet, StringLength = 1024 }.Write(frame);
        Assert.Equal(0x14, frame[29]);
        Assert.True(ConfigHeader.TryRead(frame, out var config));
        Assert.Equal((ushort)128, config.BufferCount);
        Assert.Equal(17, config.SectorCount);
        Assert.Equal(ConfigCommand.ForceSet, config.Command);
        Assert.Equal((ushort)1024, config.StringLength);
    }

    [Theory]
    [InlineData(1500, 2)]
    [InlineData(9000, 17)]
    [InlineData(576, 1)]
    [InlineData(100, 0)]
    public void Sectors_per_frame_follow_the_mtu(int mtu, int sectors) => Assert.Equal(sectors, AoeProtocol.SectorsPerFrame(mtu));

    [Theory]
    [InlineData("52:54:00:12:34:56")]
    [InlineData("ff:ff:ff:ff:ff:ff")]
    public void A_mac_address_formats_as_it_parses(string text) => Assert.Equal(text, MacAddress.Parse(text).ToString());

    [Theory]
    [InlineData("")]
    [InlineData("52:54:00:12:34")]
    [InlineData("52:54:00:12:34:5g")]
    [InlineData("52.54.00.12.34.56")]
    [InlineData("52:54:00:12:34:567")]
    public void Malformed_mac_addresses_are_refused(string text) => Assert.False(MacAddress.TryParse(text, out _));

    [Theory]
    [InlineData("e1.0", 1, 0)]
    [InlineData("65534.254", 65534, 254)]
    public void Aoe_addresses_parse_with_or_without_the_e(string text, int shelf, int slot) =>
        Assert.Equal(new AoeAddress((ushort)shelf, (byte)slot), AoeAddress.Parse(text));

    [Theory]
    [InlineData("e1")]
    [InlineData("e1.256")]
    [InlineData("e-1.0")]
    [InlineData("x1.0")]
    public void Malformed_aoe_addresses_are_refused(string text) => Assert.False(AoeAddress.TryParse(text, out _));

    [Fact]
    public void Identify_caps_the_lba28_size_and_reports_the_full_size_in_lba48_words()
    {
        var page = new byte[IdentifyDevice.Length];
        const ulong sectors = 3UL << 30; // 1.5 TiB
        IdentifyDevice.Write(page, sectors, "SERIAL", "MODEL", "1.0", writeBack: true);
        Assert.Equal(IdentifyDevice.MaxLba28Sectors, IdentifyDevice.ReadWord(page, 60) | (ulong)IdentifyDevice.ReadWord(page, 61) << 16);
        Assert.Equal(sectors, IdentifyDevice.ReadSectors(page));
        Assert.Equal(1 << 5, IdentifyDevice.ReadWord(page, 85) & 1 << 5);
        Assert.Equal("SERIAL", IdentifyDevice.ReadString(page, 10, 20));
        Assert.Equal("MODEL", IdentifyDevice.ReadString(page, 27, 40));
    }
}
