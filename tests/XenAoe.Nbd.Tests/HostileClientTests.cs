using System.Buffers.Binary;
using XenAoe.Nbd.Tests.Infrastructure;

namespace XenAoe.Nbd.Tests;

/// <summary>
/// Each misbehaving client gets a protocol error or is disconnected with exactly one warning, while a well-behaved client
/// connected to the same server before the attack keeps working.
/// </summary>
public sealed class HostileClientTests : IAsyncLifetime
{
    private TestServer _test = null!;
    private TestBlockDevice _device = null!;
    private TestBlockDevice _otherDevice = null!;
    private NbdTestClient _bystander = null!;

    public async Task InitializeAsync()
    {
        _test = await TestServer.StartAsync();
        _device = _test.AddMemoryExport("disk", 1 << 20);
        _otherDevice = _test.AddMemoryExport("other", 1 << 20);
        _bystander = await _test.ConnectAsync();
        await _bystander.GoAsync("other");
    }

    public async Task DisposeAsync()
    {
        await _bystander.DisposeAsync();
        await _test.DisposeAsync();
    }

    private async Task<NbdTestClient> OpenAsync()
    {
        var client = await _test.ConnectAsync();
        await client.GoAsync("disk");
        return client;
    }

    /// <summary>The hostile connection is closed, logged once with <paramref name="reason"/>, and the bystander still works.</summary>
    private async Task AssertDroppedOnceAndBystanderServedAsync(NbdTestClient hostile, string reason)
    {
        await hostile.ReadUntilClosedAsync();
        await Eventually.TrueAsync(() => _test.Server.ActiveConnections == 1, Eventually.DefaultTimeout, "only the bystander to remain connected");
        var warning = Assert.Single(_test.Log.Warnings);
        Assert.Contains(reason, warning);
        await AssertBystanderServedAsync();
        Assert.Single(_test.Log.Warnings);
    }

    private async Task AssertBystanderServedAsync()
    {
        var data = new byte[8192];
        Random.Shared.NextBytes(data);
        Assert.Equal(0u, (await _bystander.WriteAsync(4096, data)).Error);
        Assert.Equal(data, (await _bystander.ReadAsync(4096, data.Length)).Data);

        await using var fresh = await _test.ConnectAsync();
        await fresh.GoAsync("other");
        Assert.Equal(0u, (await fresh.ReadAsync(0, 512)).Error);
    }

    [Fact]
    public async Task Unknown_client_flags_end_the_session()
    {
        await using var hostile = await _test.ConnectAsync();
        await hostile.SendClientFlagsAsync(0x80000003);
        await AssertDroppedOnceAndBystanderServedAsync(hostile, "unknown client flags");
    }

    [Fact]
    public async Task A_bad_option_magic_ends_the_session()
    {
        await using var hostile = await _test.ConnectAsync();
        await hostile.SendClientFlagsAsync();
        await hostile.SendAsync(NbdTestClient.Option(NbdProtocol.OptGo, NbdTestClient.GoData("disk"), magic: 0x4142434445464748));
        await AssertDroppedOnceAndBystanderServedAsync(hostile, "bad option magic");
    }

    [Fact]
    public async Task An_option_longer_than_64_KiB_is_answered_too_big_and_the_session_ends_without_reading_it()
    {
        await using var hostile = await _test.ConnectAsync();
        await hostile.SendClientFlagsAsync();
        await hostile.SendAsync(NbdTestClient.Option(NbdProtocol.OptGo, [], claimedLength: 0xFFFFFFF0));
        var reply = await hostile.ReadOptionReplyAsync();
        Assert.Equal(NbdProtocol.RepErrTooBig, reply.Type);
        await AssertDroppedOnceAndBystanderServedAsync(hostile, "claims 4294967280 bytes");
    }

    [Fact]
    public async Task An_option_of_exactly_64_KiB_is_read_and_answered()
    {
        await using var client = await _test.ConnectAsync();
        await client.SendClientFlagsAsync();
        Assert.Equal(NbdProtocol.RepErrUnsup, Assert.Single(await client.OptionAsync(77, new byte[NbdServer.MaxOptionLength])).Type);
        var go = await client.OptionAsync(NbdProtocol.OptGo, NbdTestClient.GoData("disk"));
        Assert.Equal(NbdProtocol.RepAck, go[^1].Type);
        Assert.Empty(_test.Log.Warnings);
    }

    [Fact]
    public async Task Option_data_cut_short_by_a_disconnect_is_logged_once()
    {
        await using var hostile = await _test.ConnectAsync();
        await hostile.SendClientFlagsAsync();
        var option = NbdTestClient.Option(NbdProtocol.OptGo, NbdTestClient.GoData("disk"));
        await hostile.SendAsync(option.AsMemory(0, option.Length - 3));
        hostile.ShutdownSend();
        await AssertDroppedOnceAndBystanderServedAsync(hostile, "inside the data of option 7");
    }

    [Fact]
    public async Task Go_data_with_a_name_length_past_its_end_is_invalid_and_the_handshake_continues()
    {
        await using var client = await _test.ConnectAsync();
        await client.SendClientFlagsAsync();
        var data = NbdTestClient.GoData("disk");
        BinaryPrimitives.WriteUInt32BigEndian(data, 0xFFFFFFFF);
        Assert.Equal(NbdProtocol.RepErrInvalid, Assert.Single(await client.OptionAsync(NbdProtocol.OptGo, data)).Type);
        Assert.Equal(NbdProtocol.RepAck, (await client.OptionAsync(NbdProtocol.OptGo, NbdTestClient.GoData("disk")))[^1].Type);
        await AssertBystanderServedAsync();
        Assert.Empty(_test.Log.Warnings);
    }

    [Fact]
    public async Task Info_requests_repeated_thousands_of_times_get_one_answer_each()
    {
        await using var client = await _test.ConnectAsync();
        await client.SendClientFlagsAsync();
        var requests = Enumerable.Repeat(NbdProtocol.InfoName, 30000).ToArray();
        var replies = await client.OptionAsync(NbdProtocol.OptInfo, NbdTestClient.GoData("disk", requests));
        Assert.Equal(NbdProtocol.RepAck, replies[^1].Type);
        Assert.Single(replies, r => r.Type == NbdProtocol.RepInfo && BinaryPrimitives.ReadUInt16BigEndian(r.Data) == NbdProtocol.InfoName);
    }

    [Fact]
    public async Task Endless_options_without_choosing_an_export_end_the_session()
    {
        await using var hostile = await _test.ConnectAsync();
        await hostile.SendClientFlagsAsync();
        var burst = Enumerable.Range(0, 1100).SelectMany(_ => NbdTestClient.Option(0x1234, [])).ToArray();
        var sending = hostile.SendAsync(burst);
        var received = await hostile.ReadUntilClosedAsync();
        await sending;
        Assert.Equal(1024 * NbdProtocol.OptionReplyHeaderLength, received.Length);
        await AssertDroppedOnceAndBystanderServedAsync(hostile, "more than 1024 options");
    }

    [Fact]
    public async Task A_client_silent_in_the_handshake_is_dropped_after_the_timeout()
    {
        await using var test = await TestServer.StartAsync(new NbdServerOptions { HandshakeTimeout = TimeSpan.FromMilliseconds(200) });
        await using var silent = await test.ConnectAsync();
        Assert.Empty(await silent.ReadUntilClosedAsync());
        await Eventually.TrueAsync(() => test.Log.Warnings.Any(), Eventually.DefaultTimeout, "the timeout to be logged");
        Assert.Contains("handshake timeout", Assert.Single(test.Log.Warnings));
    }

    [Fact]
    public async Task A_bad_request_magic_ends_the_session()
    {
        await using var hostile = await OpenAsync();
        await hostile.SendAsync(NbdTestClient.Request(NbdProtocol.CmdRead, 1, 0, 512, magic: 0x25609514));
        await AssertDroppedOnceAndBystanderServedAsync(hostile, "bad request magic");
        Assert.Empty(_device.Calls);
    }

    [Fact]
    public async Task A_write_longer_than_32_MiB_ends_the_session_without_reading_its_payload()
    {
        await using var hostile = await OpenAsync();
        await hostile.SendAsync(NbdTestClient.Request(NbdProtocol.CmdWrite, 1, 0, 0xFFFFFE00));
        await AssertDroppedOnceAndBystanderServedAsync(hostile, "exceeds the 33554432-byte maximum payload");
        Assert.Empty(_device.Calls);
    }

    [Fact]
    public async Task A_read_longer_than_32_MiB_is_refused_and_the_session_continues()
    {
        await using var client = await OpenAsync();
        var reply = await client.ReadAsync(0, unchecked((int)0xFFFFFE00));
        Assert.Equal(NbdProtocol.EInval, reply.Error);
        Assert.Equal(0u, (await client.ReadAsync(0, 512)).Error);
        Assert.Empty(_test.Log.Warnings);
    }

    [Fact]
    public async Task A_write_whose_data_is_shorter_than_claimed_never_reaches_the_device()
    {
        await using var hostile = await OpenAsync();
        await hostile.SendAsync((byte[])[.. NbdTestClient.Request(NbdProtocol.CmdWrite, 1, 0, 1 << 20), .. new byte[1000]]);
        hostile.ShutdownSend();
        await AssertDroppedOnceAndBystanderServedAsync(hostile, "inside the payload of a 1048576-byte write");
        Assert.Empty(_device.Calls);
    }

    [Fact]
    public async Task A_small_write_whose_data_is_shorter_than_claimed_never_reaches_the_device()
    {
        await using var hostile = await OpenAsync();
        await hostile.SendAsync((byte[])[.. NbdTestClient.Request(NbdProtocol.CmdWrite, 1, 0, 4096), .. new byte[100]]);
        hostile.ShutdownSend();
        await AssertDroppedOnceAndBystanderServedAsync(hostile, "inside the payload of a 4096-byte write");
        Assert.Empty(_device.Calls);
    }

    [Fact]
    public async Task Half_a_request_header_then_a_disconnect_is_logged_once()
    {
        await using var hostile = await OpenAsync();
        await hostile.SendAsync(NbdTestClient.Request(NbdProtocol.CmdRead, 1, 0, 512).AsMemory(0, 13));
        hostile.ShutdownSend();
        await AssertDroppedOnceAndBystanderServedAsync(hostile, "inside a request header (13 of 28 bytes)");
    }

    [Fact]
    public async Task Requests_past_the_end_are_refused_and_the_session_continues()
    {
        await using var client = await OpenAsync();
        Assert.Equal(NbdProtocol.EInval, (await client.ReadAsync(1 << 20, 512)).Error);
        Assert.Equal(NbdProtocol.ENoSpc, (await client.WriteAsync((1 << 20) - 512, new byte[1024])).Error);
        Assert.Equal(NbdProtocol.EInval, (await client.CommandAsync(NbdProtocol.CmdTrim, long.MaxValue - 511, 512)).Error);
        Assert.Equal(0u, (await client.ReadAsync((1 << 20) - 512, 512)).Error);
        Assert.Single(_device.Calls);
        await AssertBystanderServedAsync();
        Assert.Empty(_test.Log.Warnings);
    }

    [Fact]
    public async Task A_client_that_vanishes_with_requests_in_flight_leaves_nothing_behind()
    {
        var release = new TaskCompletionSource();
        var cancelled = 0;
        _device.BeforeOperation = async (_, ct) =>
        {
            await release.Task;
            if (ct.IsCancellationRequested)
                Interlocked.Increment(ref cancelled);
        };
        var hostile = await OpenAsync();
        for (var i = 0; i < 16; i++)
            await hostile.SendRequestAsync(i % 2 == 0 ? NbdProtocol.CmdRead : NbdProtocol.CmdWrite, (ulong)i * 4096, 4096, payload: i % 2 == 0 ? null : new byte[4096]);
        await Eventually.TrueAsync(() => _device.Calls.Count == 16, Eventually.DefaultTimeout, "all 16 requests to reach the device");
        await hostile.DisposeAsync();

        await AssertBystanderServedAsync();
        release.SetResult();
        await Eventually.TrueAsync(() => _test.Server.ActiveConnections == 1, Eventually.DefaultTimeout, "the vanished client's connection to be cleaned up");
        Assert.Empty(_test.Log.Warnings);
    }

    [Fact]
    public async Task A_client_that_never_reads_its_replies_is_held_back_without_affecting_others()
    {
        await using var test = await TestServer.StartAsync(new NbdServerOptions { MaxInFlightRequests = 8, MaxInFlightBytes = 32 << 20 });
        var device = test.AddMemoryExport("disk", 64 << 20);
        var other = test.AddMemoryExport("other", 1 << 20);
        await using var greedy = await test.ConnectAsync();
        await greedy.GoAsync("disk");
        // 256 reads of 1 MiB: far more than the socket buffers hold, and this client reads none of the replies.
        var flood = Enumerable.Range(0, 256).SelectMany(i => NbdTestClient.Request(NbdProtocol.CmdRead, (ulong)i, (ulong)(i % 64) << 20, 1 << 20)).ToArray();
        await greedy.SendAsync(flood);
        await Eventually.TrueAsync(() => device.Calls.Count >= 8, Eventually.DefaultTimeout, "the greedy client's first reads to reach the device");

        await using var polite = await test.ConnectAsync();
        await polite.GoAsync("other");
        for (var i = 0; i < 20; i++)
            Assert.Equal(0u, (await polite.WriteAsync(0, new byte[4096])).Error);
        Assert.InRange(device.Calls.Count, 8, 255);
    }

    [Fact]
    public async Task Connections_beyond_the_limit_are_closed_at_once_while_the_admitted_ones_keep_working()
    {
        await using var test = await TestServer.StartAsync(new NbdServerOptions { MaxConnections = 2 });
        test.AddMemoryExport("disk");
        await using var first = await test.ConnectAsync();
        await using var second = await test.ConnectAsync();
        await Eventually.TrueAsync(() => test.Server.ActiveConnections == 2, Eventually.DefaultTimeout, "two admitted connections");
        await Assert.ThrowsAsync<EndOfStreamException>(test.ConnectAsync);
        await first.GoAsync("disk");
        Assert.Equal(0u, (await first.ReadAsync(0, 512)).Error);
        Assert.Empty(test.Log.Warnings);
    }
}
