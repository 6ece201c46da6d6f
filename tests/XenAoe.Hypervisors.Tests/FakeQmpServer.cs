using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace XenAoe.Hypervisors.Tests;

/// <summary>
/// A scripted QMP peer on a unix socket in a temporary folder: accepts one client and runs the script against it.
/// The script sends raw text (so tests can split lines, interleave events or send garbage) and reads the client's commands.
/// </summary>
internal sealed class FakeQmpServer : IAsyncDisposable
{
    public const string Greeting = """{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": ["oob"]}}""";

    private readonly string _directory;
    private readonly Socket _listener;
    private readonly Task _run;

    public FakeQmpServer(Func<FakeQmpConnection, Task> script)
    {
        _directory = Directory.CreateTempSubdirectory("xenaoe-qmp-").FullName;
        SocketPath = Path.Combine(_directory, "qmp.sock");
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        _listener.Listen(1);
        _run = RunAsync(script);
    }

    public string SocketPath { get; }

    /// <summary>Completes when the script has finished; faults with the script's exception.</summary>
    public Task Finished => _run;

    /// <summary>Greets and answers <c>qmp_capabilities</c>: what every script starts with.</summary>
    public static async Task NegotiateAsync(FakeQmpConnection connection)
    {
        await connection.SendAsync(Greeting + "\n");
        var command = await connection.ReceiveAsync();
        Assert.Equal("qmp_capabilities", command.GetProperty("execute").GetString());
        await connection.ReplyAsync(command, "{}");
    }

    public async ValueTask DisposeAsync()
    {
        _listener.Dispose();
        await Task.WhenAny(_run, Task.Delay(TimeSpan.FromSeconds(5)));
        Directory.Delete(_directory, recursive: true);
    }

    private async Task RunAsync(Func<FakeQmpConnection, Task> script)
    {
        using var socket = await _listener.AcceptAsync();
        await using var connection = new FakeQmpConnection(socket);
        await script(connection);
    }
}

internal sealed class FakeQmpConnection(Socket socket) : IAsyncDisposable
{
    private readonly NetworkStream _stream = new(socket, ownsSocket: false);
    private readonly StreamReader _reader = new(new NetworkStream(socket, ownsSocket: false), Encoding.UTF8);

    public async Task SendAsync(string text)
    {
        await _stream.WriteAsync(Encoding.UTF8.GetBytes(text));
        await _stream.FlushAsync();
    }

    /// <summary>Sends <paramref name="text"/> one byte per write: the client must reassemble lines across reads.</summary>
    public async Task SendByteByByteAsync(string text)
    {
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            await _stream.WriteAsync(new[] { b });
            await _stream.FlushAsync();
        }
    }

    /// <summary>Reads the next command the client sent.</summary>
    public async Task<JsonElement> ReceiveAsync()
    {
        var line = await _reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)) ?? throw new EndOfStreamException("The client closed the connection.");
        using var document = JsonDocument.Parse(line);
        return document.RootElement.Clone();
    }

    public Task ReplyAsync(JsonElement command, string returnJson) =>
        SendAsync($$"""{"return": {{returnJson}}, "id": {{command.GetProperty("id").GetRawText()}}}""" + "\n");

    public Task ErrorAsync(JsonElement command, string errorClass, string desc) =>
        SendAsync($$"""{"error": {"class": "{{errorClass}}", "desc": "{{desc}}"}, "id": {{command.GetProperty("id").GetRawText()}}}""" + "\n");

    public static string Event(string name, string data = "{}") =>
        $$"""{"timestamp": {"seconds": 1700000000, "microseconds": 250000}, "event": "{{name}}", "data": {{data}}}""" + "\n";

    public void Close() => socket.Shutdown(SocketShutdown.Both);

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _reader.Dispose();
    }
}
