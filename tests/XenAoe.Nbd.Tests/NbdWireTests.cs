using System.Buffers.Binary;
using XenAoe.Nbd.Tests.Infrastructure;

namespace XenAoe.Nbd.Tests;

public sealed class NbdWireTests
{
    [Fact]
    public void An_option_header_is_read_only_once_all_16_bytes_arrived()
    {
        var frame = NbdTestClient.Option(NbdProtocol.OptGo, [1, 2, 3]);
        for (var split = 0; split < NbdProtocol.OptionHeaderLength; split++)
            Assert.False(NbdOptionHeader.TryRead(frame.AsSpan(0, split), out _), $"parsed a header from {split} bytes");
        Assert.True(NbdOptionHeader.TryRead(frame.AsSpan(0, NbdProtocol.OptionHeaderLength), out var header));
        Assert.Equal(new NbdOptionHeader(NbdProtocol.OptionMagic, NbdProtocol.OptGo, 3), header);
    }

    [Fact]
    public void A_request_header_is_read_only_once_all_28_bytes_arrived_and_round_trips()
    {
        var frame = NbdTestClient.Request(NbdProtocol.CmdWrite, 0x0102030405060708, 0x1122334455667788, 0xA0B0C0D0, NbdProtocol.CmdFlagFua);
        for (var split = 0; split < NbdProtocol.RequestLength; split++)
            Assert.False(NbdRequestHeader.TryRead(frame.AsSpan(0, split), out _), $"parsed a request from {split} bytes");
        Assert.True(NbdRequestHeader.TryRead(frame, out var header));
        Assert.Equal(new NbdRequestHeader(NbdProtocol.RequestMagic, NbdProtocol.CmdFlagFua, NbdProtocol.CmdWrite, 0x0102030405060708, 0x1122334455667788, 0xA0B0C0D0), header);
        var written = new byte[NbdProtocol.RequestLength];
        header.Write(written);
        Assert.Equal(frame, written);
    }

    [Fact]
    public void Go_data_yields_the_name_and_every_information_request()
    {
        var data = NbdTestClient.GoData("disk0", NbdProtocol.InfoName, NbdProtocol.InfoBlockSize);
        Assert.True(NbdGoRequest.TryParse(data, out var request));
        Assert.Equal("disk0"u8.ToArray(), request.Name.ToArray());
        Assert.Equal(2, request.InfoRequestCount);
        Assert.Equal(NbdProtocol.InfoName, request.InfoRequest(0));
        Assert.Equal(NbdProtocol.InfoBlockSize, request.InfoRequest(1));
    }

    [Fact]
    public void Go_data_with_an_empty_name_and_no_requests_names_the_default_export()
    {
        Assert.True(NbdGoRequest.TryParse(NbdTestClient.GoData(""), out var request));
        Assert.True(request.Name.IsEmpty);
        Assert.Equal(0, request.InfoRequestCount);
    }

    [Fact]
    public void Go_data_cut_short_at_any_point_is_refused()
    {
        var data = NbdTestClient.GoData("disk0", NbdProtocol.InfoName, NbdProtocol.InfoDescription);
        for (var length = 0; length < data.Length; length++)
            Assert.False(NbdGoRequest.TryParse(data.AsSpan(0, length), out _), $"accepted {length} of {data.Length} bytes");
    }

    [Fact]
    public void Go_data_with_trailing_bytes_is_refused()
    {
        var data = NbdTestClient.GoData("disk0", NbdProtocol.InfoName);
        Assert.False(NbdGoRequest.TryParse([.. data, 0], out _));
    }

    [Theory]
    [InlineData(0xFFFFFFFFu)]
    [InlineData(0x80000000u)]
    [InlineData(6u)]
    [InlineData(2u)]
    public void Go_data_whose_name_length_reaches_past_the_data_is_refused(uint claimedNameLength)
    {
        var data = NbdTestClient.GoData("disk0");
        BinaryPrimitives.WriteUInt32BigEndian(data, claimedNameLength);
        Assert.False(NbdGoRequest.TryParse(data, out _));
    }

    [Fact]
    public void Go_data_claiming_more_information_requests_than_it_holds_is_refused()
    {
        var data = NbdTestClient.GoData("d", NbdProtocol.InfoName);
        BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(5), 0xFFFF);
        Assert.False(NbdGoRequest.TryParse(data, out _));
    }

    [Fact]
    public void Reply_writers_put_fields_in_big_endian_order()
    {
        var simple = new byte[NbdProtocol.SimpleReplyLength];
        NbdWriter.WriteSimpleReply(simple, NbdProtocol.EIo, 0x0102030405060708);
        Assert.Equal(Convert.FromHexString("67446698000000050102030405060708"), simple);

        var chunk = new byte[NbdProtocol.StructuredReplyHeaderLength];
        NbdWriter.WriteStructuredHeader(chunk, NbdProtocol.ReplyFlagDone, NbdProtocol.ReplyTypeOffsetData, 0x0A, 0x1008);
        Assert.Equal(Convert.FromHexString("668e33ef00010001000000000000000a00001008"), chunk);

        var option = new byte[NbdProtocol.OptionReplyHeaderLength];
        NbdWriter.WriteOptionReplyHeader(option, NbdProtocol.OptGo, NbdProtocol.RepErrUnknown, 7);
        Assert.Equal(Convert.FromHexString("0003e889045565a9000000078000000600000007"), option);
    }
}
