namespace XenAoe.Nbd.Tests;

public sealed class NbdRequestCheckTests
{
    private const long Size = 1 << 20;

    private static uint Check(ushort type, ulong offset, uint length, ushort flags = 0, bool readOnly = false) =>
        NbdErrors.Check(new NbdRequestHeader(NbdProtocol.RequestMagic, flags, type, 1, offset, length), Size, readOnly, out _);

    [Theory]
    [InlineData(NbdProtocol.CmdRead, 0ul, 512u)]
    [InlineData(NbdProtocol.CmdRead, Size - 4096ul, 4096u)]
    [InlineData(NbdProtocol.CmdWrite, 512ul, 1024u)]
    [InlineData(NbdProtocol.CmdTrim, 0ul, (uint)Size)]
    [InlineData(NbdProtocol.CmdWriteZeroes, 4096ul, 8192u)]
    [InlineData(NbdProtocol.CmdFlush, 0ul, 0u)]
    public void Aligned_requests_inside_the_export_pass(ushort type, ulong offset, uint length) =>
        Assert.Equal(0u, Check(type, offset, length));

    [Theory]
    [InlineData(NbdProtocol.CmdRead, 1ul, 512u)]
    [InlineData(NbdProtocol.CmdRead, 0ul, 511u)]
    [InlineData(NbdProtocol.CmdWrite, 256ul, 512u)]
    [InlineData(NbdProtocol.CmdTrim, 0ul, 100u)]
    [InlineData(NbdProtocol.CmdWriteZeroes, 4095ul, 4096u)]
    [InlineData(NbdProtocol.CmdRead, 0ul, 0u)]
    public void Unaligned_or_empty_requests_are_invalid(ushort type, ulong offset, uint length) =>
        Assert.Equal(NbdProtocol.EInval, Check(type, offset, length));

    [Theory]
    [InlineData(NbdProtocol.CmdRead, Size, 512u, NbdProtocol.EInval)]
    [InlineData(NbdProtocol.CmdRead, Size - 512ul, 1024u, NbdProtocol.EInval)]
    [InlineData(NbdProtocol.CmdTrim, Size - 512ul, 1024u, NbdProtocol.EInval)]
    [InlineData(NbdProtocol.CmdWrite, Size, 512u, NbdProtocol.ENoSpc)]
    [InlineData(NbdProtocol.CmdWriteZeroes, Size - 512ul, 4096u, NbdProtocol.ENoSpc)]
    [InlineData(NbdProtocol.CmdRead, 0xFFFFFFFFFFFFFE00ul, 1024u, NbdProtocol.EInval)]
    [InlineData(NbdProtocol.CmdWrite, 0xFFFFFFFFFFFFFE00ul, 1024u, NbdProtocol.ENoSpc)]
    public void Requests_past_the_end_are_refused_as_the_protocol_asks(ushort type, ulong offset, uint length, uint expected) =>
        Assert.Equal(expected, Check(type, offset, length));

    [Fact]
    public void Reads_longer_than_the_maximum_payload_are_invalid_even_inside_a_large_export() =>
        Assert.Equal(NbdProtocol.EInval, NbdErrors.Check(
            new NbdRequestHeader(NbdProtocol.RequestMagic, 0, NbdProtocol.CmdRead, 1, 0, NbdServer.MaxPayloadLength + 512u), 1L << 40, false, out _));

    [Theory]
    [InlineData(NbdProtocol.CmdWrite)]
    [InlineData(NbdProtocol.CmdTrim)]
    [InlineData(NbdProtocol.CmdWriteZeroes)]
    public void Writes_to_a_read_only_export_are_not_permitted(ushort type) =>
        Assert.Equal(NbdProtocol.EPerm, Check(type, 0, 512, readOnly: true));

    [Fact]
    public void Reads_and_flushes_of_a_read_only_export_pass()
    {
        Assert.Equal(0u, Check(NbdProtocol.CmdRead, 0, 512, readOnly: true));
        Assert.Equal(0u, Check(NbdProtocol.CmdFlush, 0, 0, readOnly: true));
    }

    [Theory]
    [InlineData(NbdProtocol.CmdCache)]
    [InlineData(NbdProtocol.CmdBlockStatus)]
    [InlineData((ushort)8)]
    [InlineData((ushort)0xFFFF)]
    public void Commands_the_server_does_not_advertise_are_invalid(ushort type) =>
        Assert.Equal(NbdProtocol.EInval, Check(type, 0, 512));

    [Theory]
    [InlineData(NbdProtocol.CmdRead, NbdProtocol.CmdFlagFua, 0u)]
    [InlineData(NbdProtocol.CmdWrite, NbdProtocol.CmdFlagFua, 0u)]
    [InlineData(NbdProtocol.CmdWriteZeroes, NbdProtocol.CmdFlagFua | NbdProtocol.CmdFlagNoHole, 0u)]
    [InlineData(NbdProtocol.CmdWrite, NbdProtocol.CmdFlagNoHole, NbdProtocol.EInval)]
    [InlineData(NbdProtocol.CmdRead, NbdProtocol.CmdFlagDf, NbdProtocol.EInval)]
    [InlineData(NbdProtocol.CmdWriteZeroes, NbdProtocol.CmdFlagFastZero, NbdProtocol.EInval)]
    [InlineData(NbdProtocol.CmdFlush, (ushort)0x8000, NbdProtocol.EInval)]
    public void Command_flags_are_accepted_only_where_documented(ushort type, ushort flags, uint expected) =>
        Assert.Equal(expected, Check(type, 0, type == NbdProtocol.CmdFlush ? 0u : 512u, flags));
}
