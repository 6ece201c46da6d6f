using System.Buffers.Binary;
using System.Text;
using XenAoe.Nbd.Tests.Infrastructure;

namespace XenAoe.Nbd.Tests;

public sealed class HandshakeTests : IAsyncLifetime
{
    private TestServer _test = null!;

    public async Task InitializeAsync()
    {
        _test = await TestServer.StartAsync();
        _test.AddMemoryExport("disk0", 1 << 20, description: "first disk");
        _test.AddMemoryExport("disk1", 2 << 20);
        _test.AddMemoryExport("ro", 1 << 20, readOnly: true);
    }

    public async Task DisposeAsync() => await _test.DisposeAsync();

    private static ushort InfoType(OptionReply reply) => BinaryPrimitives.ReadUInt16BigEndian(reply.Data);

    [Fact]
    public async Task The_greeting_offers_fixed_newstyle_and_no_zeroes()
    {
        await using var client = await _test.ConnectAsync();
        Assert.Equal(NbdProtocol.FlagFixedNewstyle | NbdProtocol.FlagNoZeroes, client.HandshakeFlags);
    }

    [Fact]
    public async Task Go_reports_size_flags_and_block_sizes_then_enters_transmission()
    {
        await using var client = await _test.ConnectAsync();
        await client.SendClientFlagsAsync();
        var replies = await client.OptionAsync(NbdProtocol.OptGo, NbdTestClient.GoData("disk1", NbdProtocol.InfoBlockSize));

        Assert.Equal(NbdProtocol.RepAck, replies[^1].Type);
        var export = replies.Single(r => r.Type == NbdProtocol.RepInfo && InfoType(r) == NbdProtocol.InfoExport);
        Assert.Equal(12, export.Data.Length);
        Assert.Equal(2ul << 20, BinaryPrimitives.ReadUInt64BigEndian(export.Data.AsSpan(2)));
        Assert.Equal(
            NbdProtocol.FlagHasFlags | NbdProtocol.FlagSendFlush | NbdProtocol.FlagSendFua | NbdProtocol.FlagSendTrim
                | NbdProtocol.FlagSendWriteZeroes | NbdProtocol.FlagCanMultiConn,
            BinaryPrimitives.ReadUInt16BigEndian(export.Data.AsSpan(10)));
        var sizes = replies.Single(r => r.Type == NbdProtocol.RepInfo && InfoType(r) == NbdProtocol.InfoBlockSize);
        Assert.Equal(14, sizes.Data.Length);
        Assert.Equal(512u, BinaryPrimitives.ReadUInt32BigEndian(sizes.Data.AsSpan(2)));
        Assert.Equal(4096u, BinaryPrimitives.ReadUInt32BigEndian(sizes.Data.AsSpan(6)));
        Assert.Equal(32u << 20, BinaryPrimitives.ReadUInt32BigEndian(sizes.Data.AsSpan(10)));

        var reply = await client.CommandAsync(NbdProtocol.CmdFlush);
        Assert.Equal(0u, reply.Error);
    }

    [Fact]
    public async Task Info_returns_the_name_and_description_when_asked_and_leaves_the_handshake_open()
    {
        await using var client = await _test.ConnectAsync();
        await client.SendClientFlagsAsync();
        var replies = await client.OptionAsync(NbdProtocol.OptInfo,
            NbdTestClient.GoData("disk0", NbdProtocol.InfoName, NbdProtocol.InfoDescription, NbdProtocol.InfoName, 0x7777));

        Assert.Equal(NbdProtocol.RepAck, replies[^1].Type);
        var name = Assert.Single(replies, r => r.Type == NbdProtocol.RepInfo && InfoType(r) == NbdProtocol.InfoName);
        Assert.Equal("disk0", Encoding.UTF8.GetString(name.Data.AsSpan(2)));
        var description = Assert.Single(replies, r => r.Type == NbdProtocol.RepInfo && InfoType(r) == NbdProtocol.InfoDescription);
        Assert.Equal("first disk", Encoding.UTF8.GetString(description.Data.AsSpan(2)));

        var go = await client.OptionAsync(NbdProtocol.OptGo, NbdTestClient.GoData("disk0"));
        Assert.Equal(NbdProtocol.RepAck, go[^1].Type);
    }

    [Fact]
    public async Task Go_for_an_unknown_export_is_answered_unknown_and_the_client_may_try_again()
    {
        await using var client = await _test.ConnectAsync();
        await client.SendClientFlagsAsync();
        var error = Assert.Single(await client.OptionAsync(NbdProtocol.OptGo, NbdTestClient.GoData("nope")));
        Assert.Equal(NbdProtocol.RepErrUnknown, error.Type);
        Assert.Contains("nope", error.Text);

        var replies = await client.OptionAsync(NbdProtocol.OptGo, NbdTestClient.GoData("disk0"));
        Assert.Equal(NbdProtocol.RepAck, replies[^1].Type);
    }

    [Fact]
    public async Task The_default_export_is_found_by_the_empty_name_once_added()
    {
        await using (var client = await _test.ConnectAsync())
        {
            await client.SendClientFlagsAsync();
            Assert.Equal(NbdProtocol.RepErrUnknown, Assert.Single(await client.OptionAsync(NbdProtocol.OptGo, NbdTestClient.GoData(""))).Type);
        }
        _test.AddMemoryExport("", 4096);
        await using var second = await _test.ConnectAsync();
        await second.GoAsync("");
        Assert.Equal(4096, second.ExportSize);
    }

    [Fact]
    public async Task List_names_every_export_with_its_description()
    {
        await using var client = await _test.ConnectAsync();
        await client.SendClientFlagsAsync();
        var replies = await client.OptionAsync(NbdProtocol.OptList);

        Assert.Equal(NbdProtocol.RepAck, replies[^1].Type);
        var servers = replies.Where(r => r.Type == NbdProtocol.RepServer).Select(r =>
        {
            var nameLength = (int)BinaryPrimitives.ReadUInt32BigEndian(r.Data);
            return (Name: Encoding.UTF8.GetString(r.Data, 4, nameLength), Details: Encoding.UTF8.GetString(r.Data.AsSpan(4 + nameLength)));
        }).ToList();
        Assert.Equal([("disk0", "first disk"), ("disk1", ""), ("ro", "")], servers);
    }

    [Fact]
    public async Task List_with_data_is_invalid()
    {
        await using var client = await _test.ConnectAsync();
        await client.SendClientFlagsAsync();
        Assert.Equal(NbdProtocol.RepErrInvalid, Assert.Single(await client.OptionAsync(NbdProtocol.OptList, [1])).Type);
    }

    [Theory]
    [InlineData(NbdProtocol.OptStartTls)]
    [InlineData(NbdProtocol.OptListMetaContext)]
    [InlineData(NbdProtocol.OptSetMetaContext)]
    [InlineData(NbdProtocol.OptExtendedHeaders)]
    [InlineData(4u)]
    [InlineData(0xDEADBEEFu)]
    public async Task Options_the_server_does_not_know_are_answered_unsupported_and_the_handshake_continues(uint option)
    {
        await using var client = await _test.ConnectAsync();
        await client.SendClientFlagsAsync();
        Assert.Equal(NbdProtocol.RepErrUnsup, Assert.Single(await client.OptionAsync(option, [1, 2, 3, 4])).Type);
        var replies = await client.OptionAsync(NbdProtocol.OptGo, NbdTestClient.GoData("disk0"));
        Assert.Equal(NbdProtocol.RepAck, replies[^1].Type);
    }

    [Fact]
    public async Task Structured_reply_with_data_is_invalid()
    {
        await using var client = await _test.ConnectAsync();
        await client.SendClientFlagsAsync();
        Assert.Equal(NbdProtocol.RepErrInvalid, Assert.Single(await client.OptionAsync(NbdProtocol.OptStructuredReply, [0])).Type);
    }

    [Fact]
    public async Task Abort_is_acknowledged_and_the_connection_closes_without_a_warning()
    {
        await using var client = await _test.ConnectAsync();
        await client.SendClientFlagsAsync();
        Assert.Equal(NbdProtocol.RepAck, Assert.Single(await client.OptionAsync(NbdProtocol.OptAbort)).Type);
        Assert.Empty(await client.ReadUntilClosedAsync());
        await Eventually.TrueAsync(() => _test.Server.ActiveConnections == 0, Eventually.DefaultTimeout, "the aborted connection to be gone");
        Assert.Empty(_test.Log.Warnings);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Export_name_opens_the_export_with_124_zero_bytes_unless_the_client_asked_for_none(bool noZeroes)
    {
        await using var client = await _test.ConnectAsync();
        await client.SendClientFlagsAsync(NbdProtocol.ClientFlagFixedNewstyle | (noZeroes ? NbdProtocol.ClientFlagNoZeroes : 0));
        await client.SendOptionAsync(NbdProtocol.OptExportName, "disk1"u8.ToArray());
        var reply = await client.ReceiveExactAsync(noZeroes ? 10 : 134);
        Assert.Equal(2ul << 20, BinaryPrimitives.ReadUInt64BigEndian(reply));
        Assert.NotEqual(0, BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(8)) & NbdProtocol.FlagHasFlags);
        Assert.All(reply.Skip(10), b => Assert.Equal(0, b));

        var write = await client.WriteAsync(0, new byte[512]);
        Assert.Equal(0u, write.Error);
    }

    [Fact]
    public async Task Export_name_for_an_unknown_export_ends_the_session()
    {
        await using var client = await _test.ConnectAsync();
        await client.SendClientFlagsAsync();
        await client.SendOptionAsync(NbdProtocol.OptExportName, "missing"u8.ToArray());
        Assert.Empty(await client.ReadUntilClosedAsync());
    }

    [Fact]
    public async Task A_read_only_device_is_advertised_read_only_without_write_commands()
    {
        await using var client = await _test.ConnectAsync();
        await client.GoAsync("ro");
        Assert.Equal(NbdProtocol.FlagHasFlags | NbdProtocol.FlagReadOnly | NbdProtocol.FlagSendFlush | NbdProtocol.FlagCanMultiConn,
            client.TransmissionFlags);
    }

    [Fact]
    public async Task A_client_without_fixed_newstyle_can_still_open_an_export_by_name()
    {
        await using var client = await _test.ConnectAsync();
        await client.SendClientFlagsAsync(0);
        await client.SendOptionAsync(NbdProtocol.OptExportName, "disk0"u8.ToArray());
        var reply = await client.ReceiveExactAsync(134);
        Assert.Equal(1ul << 20, BinaryPrimitives.ReadUInt64BigEndian(reply));
    }
}
