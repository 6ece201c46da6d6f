using System.Text.Json;
using System.Text.Json.Nodes;
using XenAoe.Hypervisors.Qmp;

namespace XenAoe.Hypervisors.Tests;

public sealed class QmpClientTests
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Connecting_reads_the_greeting_and_negotiates_capabilities()
    {
        await using var server = new FakeQmpServer(FakeQmpServer.NegotiateAsync);

        await using var client = await QmpClient.ConnectAsync(server.SocketPath, s_timeout);

        await server.Finished;
        Assert.Equal(7, client.Greeting.GetProperty("version").GetProperty("qemu").GetProperty("major").GetInt32());
    }

    [Fact]
    public async Task Greeting_and_replies_split_into_single_bytes_are_reassembled()
    {
        await using var server = new FakeQmpServer(async c =>
        {
            await c.SendByteByByteAsync(FakeQmpServer.Greeting + "\n");
            var caps = await c.ReceiveAsync();
            await c.SendByteByByteAsync($$"""{"return": {}, "id": {{caps.GetProperty("id")}}}""" + "\n");
            var status = await c.ReceiveAsync();
            await c.SendByteByByteAsync($$"""{"return": {"status": "running", "running": true}, "id": {{status.GetProperty("id")}}}""" + "\n");
        });
        await using var client = await QmpClient.ConnectAsync(server.SocketPath, s_timeout);

        var reply = await client.ExecuteAsync("query-status");

        Assert.Equal("running", reply.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Replies_are_matched_by_id_when_they_arrive_out_of_order_between_events()
    {
        await using var server = new FakeQmpServer(async c =>
        {
            await FakeQmpServer.NegotiateAsync(c);
            var first = await c.ReceiveAsync();
            var second = await c.ReceiveAsync();
            // Second answered first, with events before, between and after, all in one write.
            await c.SendAsync(
                FakeQmpConnection.Event("STOP")
                + $$"""{"return": {"which": "{{second.GetProperty("execute").GetString()}}"}, "id": {{second.GetProperty("id")}}}""" + "\n"
                + FakeQmpConnection.Event("RESET", """{"guest": false, "reason": "host-qmp-system-reset"}""")
                + $$"""{"return": {"which": "{{first.GetProperty("execute").GetString()}}"}, "id": {{first.GetProperty("id")}}}""" + "\n"
                + FakeQmpConnection.Event("RESUME"));
        });
        await using var client = await QmpClient.ConnectAsync(server.SocketPath, s_timeout);
        var events = new List<QmpEvent>();
        client.EventReceived += e =>
        {
            lock (events)
                events.Add(e);
        };
        var resumed = client.WaitForEventAsync("RESUME", s_timeout);

        var a = client.ExecuteAsync("query-a");
        var b = client.ExecuteAsync("query-b");

        Assert.Equal("query-a", (await a).GetProperty("which").GetString());
        Assert.Equal("query-b", (await b).GetProperty("which").GetString());
        await resumed;
        lock (events)
        {
            Assert.Equal(["STOP", "RESET", "RESUME"], events.Select(e => e.Name));
            Assert.Equal("host-qmp-system-reset", events[1].Data.GetProperty("reason").GetString());
            Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1700000000).AddMilliseconds(250), events[0].Timestamp);
        }
    }

    [Fact]
    public async Task Arguments_are_sent_with_the_command_and_an_id()
    {
        JsonElement? seen = null;
        await using var server = new FakeQmpServer(async c =>
        {
            await FakeQmpServer.NegotiateAsync(c);
            var command = await c.ReceiveAsync();
            seen = command;
            await c.ReplyAsync(command, "{}");
        });
        await using var client = await QmpClient.ConnectAsync(server.SocketPath, s_timeout);

        await client.ExecuteAsync("migrate", new JsonObject { ["uri"] = "tcp:10.0.0.1:4444" });

        await server.Finished;
        Assert.Equal("migrate", seen!.Value.GetProperty("execute").GetString());
        Assert.Equal("tcp:10.0.0.1:4444", seen.Value.GetProperty("arguments").GetProperty("uri").GetString());
        Assert.Equal(JsonValueKind.Number, seen.Value.GetProperty("id").ValueKind);
    }

    [Fact]
    public async Task An_error_reply_becomes_a_QmpException_with_class_and_description()
    {
        await using var server = new FakeQmpServer(async c =>
        {
            await FakeQmpServer.NegotiateAsync(c);
            var command = await c.ReceiveAsync();
            await c.ErrorAsync(command, "CommandNotFound", "The command no-such-thing has not been found");
            var next = await c.ReceiveAsync();
            await c.ReplyAsync(next, "{}");
        });
        await using var client = await QmpClient.ConnectAsync(server.SocketPath, s_timeout);

        var error = await Assert.ThrowsAsync<QmpException>(() => client.ExecuteAsync("no-such-thing"));

        Assert.Equal("CommandNotFound", error.ErrorClass);
        Assert.Equal("The command no-such-thing has not been found", error.Description);
        Assert.Equal("no-such-thing", error.Command);
        // The connection stays usable after an error reply.
        await client.ExecuteAsync("query-status");
    }

    [Fact]
    public async Task Garbage_lines_are_skipped_and_the_command_still_completes()
    {
        await using var server = new FakeQmpServer(async c =>
        {
            await FakeQmpServer.NegotiateAsync(c);
            var command = await c.ReceiveAsync();
            await c.SendAsync("this is not json\n\n[1,2,3]\n{\"unrelated\": true}\n{\"return\": {}, \"id\": 999999}\n{\"half\": \n");
            await c.ReplyAsync(command, "{\"ok\": 1}");
        });
        await using var client = await QmpClient.ConnectAsync(server.SocketPath, s_timeout);

        var reply = await client.ExecuteAsync("query-status");

        Assert.Equal(1, reply.GetProperty("ok").GetInt32());
        Assert.Equal(6, client.IgnoredLines);
    }

    [Fact]
    public async Task A_server_closing_mid_command_fails_that_command_and_every_later_one()
    {
        await using var server = new FakeQmpServer(async c =>
        {
            await FakeQmpServer.NegotiateAsync(c);
            await c.ReceiveAsync();
            c.Close();
        });
        await using var client = await QmpClient.ConnectAsync(server.SocketPath, s_timeout);

        var pending = await Assert.ThrowsAsync<QmpConnectionException>(() => client.ExecuteAsync("query-status"));
        var later = await Assert.ThrowsAsync<QmpConnectionException>(() => client.ExecuteAsync("query-status"));

        Assert.Contains("query-status", pending.Message, StringComparison.Ordinal);
        Assert.Contains("closed", later.Message, StringComparison.Ordinal);
        Assert.False(client.IsConnected);
        Assert.True(client.Completion.IsCompleted);
    }

    [Fact]
    public async Task A_command_without_a_reply_times_out_naming_the_command()
    {
        await using var server = new FakeQmpServer(async c =>
        {
            await FakeQmpServer.NegotiateAsync(c);
            await c.ReceiveAsync();
            // Silent until the client has given up: then a late reply for the dropped id must be ignored.
            var next = await c.ReceiveAsync();
            await c.SendAsync("{\"return\": {}, \"id\": 2}\n");
            await c.ReplyAsync(next, "{\"late\": false}");
        });
        await using var client = await QmpClient.ConnectAsync(server.SocketPath, s_timeout);

        var error = await Assert.ThrowsAsync<TimeoutException>(() => client.ExecuteAsync("query-migrate", timeout: TimeSpan.FromMilliseconds(200)));
        var reply = await client.ExecuteAsync("query-status");

        Assert.Contains("query-migrate", error.Message, StringComparison.Ordinal);
        Assert.False(reply.GetProperty("late").GetBoolean());
    }

    [Fact]
    public async Task A_server_that_never_greets_fails_the_connect_with_a_timeout()
    {
        await using var server = new FakeQmpServer(async c => await Task.Delay(TimeSpan.FromSeconds(2)));

        var error = await Assert.ThrowsAsync<TimeoutException>(() => QmpClient.ConnectAsync(server.SocketPath, TimeSpan.FromMilliseconds(300)));

        Assert.Contains("greeting", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Connecting_to_a_missing_socket_says_which_socket()
    {
        var path = Path.Combine(Path.GetTempPath(), $"xenaoe-missing-{Guid.NewGuid():N}.sock");

        var error = await Assert.ThrowsAsync<QmpConnectionException>(() => QmpClient.ConnectAsync(path, s_timeout));

        Assert.Contains(path, error.Message, StringComparison.Ordinal);
    }
}
