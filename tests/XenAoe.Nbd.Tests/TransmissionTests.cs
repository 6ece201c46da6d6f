using System.Net.Sockets;
using XenAoe.Block;
using XenAoe.Nbd.Tests.Infrastructure;

namespace XenAoe.Nbd.Tests;

/// <summary>Requests run inline on the receive loop: the same behaviour is expected.</summary>
public sealed class InlineTransmissionTests : TransmissionTests
{
    protected override NbdServerOptions Options => new() { RunRequestsInline = true };
}

public class TransmissionTests : IAsyncLifetime
{
    private TestServer _test = null!;
    private TestBlockDevice _device = null!;

    protected virtual NbdServerOptions Options => new();

    public async Task InitializeAsync()
    {
        _test = await TestServer.StartAsync(Options);
        _device = _test.AddMemoryExport("disk", 1 << 20);
    }

    public async Task DisposeAsync() => await _test.DisposeAsync();

    private async Task<NbdTestClient> OpenAsync(bool structured = true, string export = "disk")
    {
        var client = await _test.ConnectAsync();
        await client.GoAsync(export, structured);
        return client;
    }

    private static byte[] Pattern(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_write_then_a_read_return_the_same_bytes_with_simple_or_structured_replies(bool structured)
    {
        await using var client = await OpenAsync(structured);
        var data = Pattern(64 * 1024, 1);
        Assert.Equal(0u, (await client.WriteAsync(8192, data)).Error);
        var reply = await client.ReadAsync(8192, data.Length);
        Assert.Equal(0u, reply.Error);
        Assert.Equal(data, reply.Data);
        Assert.Equal(data, _device.Data.AsSpan(8192, data.Length).ToArray());
    }

    [Fact]
    public async Task Reads_and_writes_of_the_maximum_payload_travel_whole()
    {
        await using var test = await TestServer.StartAsync();
        var device = test.AddMemoryExport("big", 64 << 20);
        await using var client = await test.ConnectAsync();
        await client.GoAsync("big");
        var data = Pattern(NbdServer.MaxPayloadLength, 2);
        Assert.Equal(0u, (await client.WriteAsync(4096, data)).Error);
        var reply = await client.ReadAsync(4096, data.Length);
        Assert.True(data.AsSpan().SequenceEqual(reply.Data), "the 32 MiB read differs from what was written");
        Assert.Equal([new DeviceCall(BlockOperation.Write, 4096, data.Length, false), new DeviceCall(BlockOperation.Read, 4096, data.Length, false)], device.Calls);
    }

    [Fact]
    public async Task A_fua_write_reaches_the_device_as_force_unit_access()
    {
        await using var client = await OpenAsync();
        Assert.Equal(0u, (await client.WriteAsync(0, new byte[4096], NbdProtocol.CmdFlagFua)).Error);
        Assert.Equal(0u, (await client.WriteAsync(4096, new byte[4096])).Error);
        Assert.Equal([new DeviceCall(BlockOperation.Write, 0, 4096, true), new DeviceCall(BlockOperation.Write, 4096, 4096, false)], _device.Calls);
    }

    [Fact]
    public async Task Flush_trim_and_write_zeroes_reach_the_device_and_fua_adds_a_flush()
    {
        await using var client = await OpenAsync();
        _device.Data.AsSpan().Fill(0xEE);
        Assert.Equal(0u, (await client.CommandAsync(NbdProtocol.CmdFlush)).Error);
        Assert.Equal(0u, (await client.CommandAsync(NbdProtocol.CmdTrim, 4096, 8192)).Error);
        Assert.Equal(0u, (await client.CommandAsync(NbdProtocol.CmdWriteZeroes, 65536, 4096, NbdProtocol.CmdFlagNoHole)).Error);
        Assert.Equal(0u, (await client.CommandAsync(NbdProtocol.CmdWriteZeroes, 0, 512, NbdProtocol.CmdFlagFua)).Error);
        Assert.Equal(
            [
                new DeviceCall(BlockOperation.Flush, 0, 0, false),
                new DeviceCall(BlockOperation.Trim, 4096, 8192, false),
                new DeviceCall(BlockOperation.WriteZeroes, 65536, 4096, false),
                new DeviceCall(BlockOperation.WriteZeroes, 0, 512, false),
                new DeviceCall(BlockOperation.Flush, 0, 0, false),
            ],
            _device.Calls);
        Assert.True(_device.Data.AsSpan(65536, 4096).IndexOfAnyExcept((byte)0) < 0);
        Assert.Equal(0xEE, _device.Data[65536 + 4096]);
    }

    [Theory]
    [InlineData(NbdProtocol.CmdRead, 1 << 20, 512, NbdProtocol.EInval)]
    [InlineData(NbdProtocol.CmdRead, 100, 512, NbdProtocol.EInval)]
    [InlineData(NbdProtocol.CmdWrite, (1 << 20) - 512, 4096, NbdProtocol.ENoSpc)]
    [InlineData(NbdProtocol.CmdWrite, 0, 100, NbdProtocol.EInval)]
    [InlineData(NbdProtocol.CmdWrite, 0, 0, NbdProtocol.EInval)]
    [InlineData(NbdProtocol.CmdTrim, 1 << 20, 512, NbdProtocol.EInval)]
    [InlineData(NbdProtocol.CmdWriteZeroes, 1 << 19, 1 << 20, NbdProtocol.ENoSpc)]
    [InlineData(NbdProtocol.CmdBlockStatus, 0, 512, NbdProtocol.EInval)]
    [InlineData(NbdProtocol.CmdCache, 0, 512, NbdProtocol.EInval)]
    [InlineData((ushort)42, 0, 512, NbdProtocol.EInval)]
    public async Task Bad_requests_are_refused_without_touching_the_device_and_the_connection_carries_on(ushort type, long offset, int length, uint expected)
    {
        foreach (var structured in new[] { true, false })
        {
            await using var client = await OpenAsync(structured);
            var cookie = await client.SendRequestAsync(type, (ulong)offset, (uint)length, payload: type == NbdProtocol.CmdWrite ? new byte[length] : null);
            var reply = await client.ReadReplyAsync();
            Assert.Equal(cookie, reply.Cookie);
            Assert.Equal(expected, reply.Error);
            if (structured)
            {
                Assert.Equal(NbdProtocol.ReplyTypeError, reply.ErrorChunkType);
                Assert.False(string.IsNullOrEmpty(reply.Message));
            }
            Assert.Empty(_device.Calls);

            // The payload of a refused write was consumed: the stream is still in step.
            Assert.Equal(0u, (await client.ReadAsync(0, 512)).Error);
            _device.Calls.Clear();
        }
    }

    [Fact]
    public async Task A_read_longer_than_the_maximum_payload_is_refused_and_the_connection_carries_on()
    {
        await using var test = await TestServer.StartAsync();
        var device = test.AddMemoryExport("big", 64 << 20);
        await using var client = await test.ConnectAsync();
        await client.GoAsync("big");
        var reply = await client.ReadAsync(0, NbdServer.MaxPayloadLength + 512);
        Assert.Equal(NbdProtocol.EInval, reply.Error);
        Assert.Empty(device.Calls);
        Assert.Equal(0u, (await client.ReadAsync(0, 4096)).Error);
    }

    [Fact]
    public async Task Writes_to_a_read_only_export_are_refused_with_eperm_and_reads_work()
    {
        var device = _test.AddMemoryExport("ro", 1 << 20, readOnly: true);
        await using var client = await OpenAsync(export: "ro");
        Assert.Equal(NbdProtocol.EPerm, (await client.WriteAsync(0, new byte[512])).Error);
        Assert.Equal(NbdProtocol.EPerm, (await client.CommandAsync(NbdProtocol.CmdTrim, 0, 512)).Error);
        Assert.Equal(NbdProtocol.EPerm, (await client.CommandAsync(NbdProtocol.CmdWriteZeroes, 0, 512)).Error);
        Assert.Equal(0u, (await client.ReadAsync(0, 512)).Error);
        Assert.Equal([new DeviceCall(BlockOperation.Read, 0, 512, false)], device.Calls);
    }

    [Theory]
    [InlineData(BlockError.Io, NbdProtocol.EIo)]
    [InlineData(BlockError.NoSpace, NbdProtocol.ENoSpc)]
    [InlineData(BlockError.Invalid, NbdProtocol.EInval)]
    [InlineData(BlockError.NotPermitted, NbdProtocol.EPerm)]
    public async Task Device_failures_become_the_matching_nbd_error_with_the_message_and_offset(BlockError error, uint expected)
    {
        _device.BeforeOperation = (call, _) => call.Offset == 4096 ? throw new BlockDeviceException(error, "leg e1.0 failed") : ValueTask.CompletedTask;
        await using var client = await OpenAsync();
        var read = await client.ReadAsync(4096, 4096);
        Assert.Equal(expected, read.Error);
        Assert.Equal(NbdProtocol.ReplyTypeErrorOffset, read.ErrorChunkType);
        Assert.Equal(4096ul, read.ErrorOffset);
        Assert.Equal("leg e1.0 failed", read.Message);
        Assert.Equal(expected, (await client.WriteAsync(4096, new byte[512])).Error);
        Assert.Equal(0u, (await client.ReadAsync(0, 512)).Error);

        await using var simple = await OpenAsync(structured: false);
        Assert.Equal(expected, (await simple.ReadAsync(4096, 512)).Error);
        Assert.Equal(0u, (await simple.ReadAsync(0, 512)).Error);
    }

    [Fact]
    public async Task A_device_that_throws_something_unexpected_yields_eio_and_one_warning()
    {
        _device.BeforeOperation = (_, _) => throw new InvalidDataException("bug");
        await using var client = await OpenAsync();
        Assert.Equal(NbdProtocol.EIo, (await client.ReadAsync(0, 512)).Error);
        Assert.Equal(NbdProtocol.EIo, (await client.ReadAsync(0, 512)).Error);
        Assert.Single(_test.Log.Warnings);
    }

    [Fact]
    public async Task Replies_come_back_in_completion_order_not_request_order()
    {
        var release = new TaskCompletionSource();
        _device.BeforeOperation = async (call, _) =>
        {
            if (call.Offset == 0)
                await release.Task;
        };
        await using var client = await OpenAsync();
        var slow = await client.SendRequestAsync(NbdProtocol.CmdRead, 0, 4096);
        var fast = await client.SendRequestAsync(NbdProtocol.CmdRead, 8192, 4096);
        Assert.Equal(fast, (await client.ReadReplyAsync()).Cookie);
        release.SetResult();
        Assert.Equal(slow, (await client.ReadReplyAsync()).Cookie);
    }

    [Fact]
    public async Task Many_requests_of_one_connection_run_on_the_device_at_the_same_time()
    {
        const int depth = 32;
        var inside = 0;
        var allInside = new TaskCompletionSource();
        _device.BeforeOperation = async (_, _) =>
        {
            if (Interlocked.Increment(ref inside) == depth)
                allInside.SetResult();
            await allInside.Task;
        };
        await using var client = await OpenAsync();
        for (var i = 0; i < depth; i++)
            await client.SendRequestAsync(NbdProtocol.CmdWrite, (ulong)i * 4096, 4096, payload: Pattern(4096, i));
        await Eventually.WithinAsync(allInside.Task, $"all {depth} writes to be inside the device at once");
        var cookies = new HashSet<ulong>();
        for (var i = 0; i < depth; i++)
        {
            var reply = await client.ReadReplyAsync();
            Assert.Equal(0u, reply.Error);
            Assert.True(cookies.Add(reply.Cookie));
        }
        for (var i = 0; i < depth; i++)
            Assert.Equal(Pattern(4096, i), _device.Data.AsSpan(i * 4096, 4096).ToArray());
    }

    [Fact]
    public async Task The_in_flight_request_cap_holds_back_further_requests_until_replies_go_out()
    {
        await using var test = await TestServer.StartAsync(new NbdServerOptions { MaxInFlightRequests = 4 });
        var device = test.AddMemoryExport("disk");
        var inside = 0;
        var most = 0;
        var gates = new System.Collections.Concurrent.ConcurrentQueue<TaskCompletionSource>();
        device.BeforeOperation = async (_, _) =>
        {
            var now = Interlocked.Increment(ref inside);
            InterlockedMax(ref most, now);
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            gates.Enqueue(gate);
            await gate.Task;
            Interlocked.Decrement(ref inside);
        };
        await using var client = await test.ConnectAsync();
        await client.GoAsync("disk");
        for (var i = 0; i < 12; i++)
            await client.SendRequestAsync(NbdProtocol.CmdRead, (ulong)i * 512, 512);
        for (var answered = 0; answered < 12; answered++)
        {
            await Eventually.TrueAsync(() => !gates.IsEmpty, Eventually.DefaultTimeout, $"a request to reach the device after {answered} replies");
            Assert.True(gates.TryDequeue(out var gate));
            gate.SetResult();
            Assert.Equal(0u, (await client.ReadReplyAsync()).Error);
        }
        Assert.Equal(12, device.Calls.Count);
        Assert.InRange(most, 1, 4);
    }

    [Fact]
    public async Task The_in_flight_byte_cap_admits_one_maximum_read_at_a_time()
    {
        await using var test = await TestServer.StartAsync(new NbdServerOptions { MaxInFlightBytes = NbdServer.MaxPayloadLength });
        var device = test.AddMemoryExport("disk", 64 << 20);
        var inside = 0;
        var most = 0;
        device.BeforeOperation = async (_, _) =>
        {
            InterlockedMax(ref most, Interlocked.Increment(ref inside));
            await Task.Yield();
            Interlocked.Decrement(ref inside);
        };
        await using var client = await test.ConnectAsync();
        await client.GoAsync("disk");
        for (var i = 0; i < 3; i++)
            await client.SendRequestAsync(NbdProtocol.CmdRead, (ulong)i * (16 << 20), 20 << 20);
        for (var i = 0; i < 3; i++)
            Assert.Equal(0u, (await client.ReadReplyAsync()).Error);
        Assert.Equal(1, most);
    }

    [Fact]
    public async Task Disconnect_answers_requests_in_flight_before_closing()
    {
        var release = new TaskCompletionSource();
        _device.BeforeOperation = async (_, _) => await release.Task;
        await using var client = await OpenAsync();
        var cookie = await client.SendRequestAsync(NbdProtocol.CmdWrite, 0, 4096, payload: Pattern(4096, 9));
        await client.DisconnectAsync();
        await Eventually.TrueAsync(() => !_device.Calls.IsEmpty, Eventually.DefaultTimeout, "the write to reach the device");
        release.SetResult();
        var reply = await client.ReadReplyAsync();
        Assert.Equal((cookie, 0u), (reply.Cookie, reply.Error));
        Assert.Empty(await client.ReadUntilClosedAsync());
        Assert.Equal(Pattern(4096, 9), _device.Data.AsSpan(0, 4096).ToArray());
    }

    [Fact]
    public async Task Writes_on_one_connection_are_visible_to_another_after_their_reply()
    {
        await using var first = await OpenAsync();
        await using var second = await OpenAsync();
        var data = Pattern(4096, 3);
        Assert.Equal(0u, (await first.WriteAsync(12288, data)).Error);
        Assert.Equal(data, (await second.ReadAsync(12288, 4096)).Data);
    }

    [Fact]
    public async Task Removing_an_export_disconnects_its_clients_and_leaves_other_exports_serving()
    {
        var other = _test.AddMemoryExport("other");
        await using var doomed = await OpenAsync();
        await using var survivor = await OpenAsync(export: "other");
        Assert.True(await _test.Server.RemoveExportAsync("disk"));
        Assert.False(_test.Server.RemoveExport("disk"));
        Assert.Empty(await doomed.ReadUntilClosedAsync());
        Assert.Equal(0u, (await survivor.WriteAsync(0, new byte[512])).Error);

        await using var late = await _test.ConnectAsync();
        await late.SendClientFlagsAsync();
        Assert.Equal(NbdProtocol.RepErrUnknown, Assert.Single(await late.OptionAsync(NbdProtocol.OptGo, NbdTestClient.GoData("disk"))).Type);
        Assert.Single(other.Calls);
    }

    [Fact]
    public async Task Active_connections_count_clients_until_they_leave()
    {
        await using var a = await OpenAsync();
        await using var b = await _test.ConnectAsync();
        await Eventually.TrueAsync(() => _test.Server.ActiveConnections == 2, Eventually.DefaultTimeout, "two connections to be counted");
        await a.DisconnectAsync();
        await a.ReadUntilClosedAsync();
        await Eventually.TrueAsync(() => _test.Server.ActiveConnections == 1, Eventually.DefaultTimeout, "one connection after the first disconnected");
    }

    [Fact]
    public async Task Disposing_the_server_disconnects_clients_and_removes_the_socket_file()
    {
        await using var client = await OpenAsync();
        await _test.Server.DisposeAsync();
        Assert.Empty(await client.ReadUntilClosedAsync());
        Assert.False(File.Exists(_test.SocketPath));
        Assert.Equal(0, _test.Server.ActiveConnections);
    }

    [Fact]
    public async Task A_stale_socket_file_is_replaced_but_a_live_socket_or_a_regular_file_is_left_alone()
    {
        var directory = Directory.CreateTempSubdirectory("xenaoe-nbd-").FullName;
        try
        {
            // A socket file nobody accepts on: bound elsewhere and renamed, so closing the socket does not unlink it.
            var path = Path.Combine(directory, "s.sock");
            var bound = Path.Combine(directory, "bound.sock");
            using (var stale = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            {
                stale.Bind(new UnixDomainSocketEndPoint(bound));
                File.Move(bound, path);
            }
            Assert.True(File.Exists(path));
            await using var first = new NbdServer();
            await first.StartAsync([new UnixDomainSocketEndPoint(path)], CancellationToken.None);

            await using var second = new NbdServer();
            var live = await Assert.ThrowsAsync<SocketException>(() => second.StartAsync([new UnixDomainSocketEndPoint(path)], CancellationToken.None));
            Assert.Equal(SocketError.AddressAlreadyInUse, live.SocketErrorCode);

            var image = Path.Combine(directory, "disk.img");
            await File.WriteAllBytesAsync(image, [1, 2, 3]);
            await Assert.ThrowsAsync<SocketException>(() => second.StartAsync([new UnixDomainSocketEndPoint(image)], CancellationToken.None));
            Assert.Equal([1, 2, 3], await File.ReadAllBytesAsync(image));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static void InterlockedMax(ref int target, int value)
    {
        var current = Volatile.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
                return;
            current = seen;
        }
    }
}
