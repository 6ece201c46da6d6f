using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using XenAoe.Control;
using XenAoe.Control.Store;

namespace XenAoe.ControllerApiLoad;

/// <summary>
/// A controller run inside this process (<see cref="ControllerDaemon.RunAsync"/>) on a free loopback port, with its SQLite store
/// and token file in a temp folder. It leads (the only controller on its file), so it runs jobs and heartbeats like a real one.
/// <see cref="DisposeAsync"/> stops it and deletes the folder.
/// </summary>
public sealed class LoopbackController : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop;
    private readonly Task _run;
    private readonly SqliteStateStore _store;

    private LoopbackController(string directory, string token, Uri baseAddress, CancellationTokenSource stop, Task run)
    {
        Directory = directory;
        Token = token;
        BaseAddress = baseAddress;
        _stop = stop;
        _run = run;
        // A second connection pool on the controller's file: SQLite serialises the writers, so tests can write the inventory straight in.
        _store = new SqliteStateStore(DatabasePath);
        State = new ControllerState(_store);
    }

    public string Directory { get; }

    public string Token { get; }

    /// <summary><c>http://127.0.0.1:PORT/</c>.</summary>
    public Uri BaseAddress { get; }

    public string DatabasePath => Path.Combine(Directory, "state.db");

    /// <summary>The controller's store, opened beside it: inventory written here is what the API reads.</summary>
    public ControllerState State { get; }

    /// <summary>Starts a controller and returns once <c>/api/v1/health</c> answers 200.</summary>
    /// <exception cref="TimeoutException">The API did not answer within <paramref name="timeout"/> (default 30 s).</exception>
    public static async Task<LoopbackController> StartAsync(TimeSpan? timeout = null)
    {
        var directory = System.IO.Directory.CreateTempSubdirectory("xenaoe-controller-").FullName;
        var tokenFile = Path.Combine(directory, "token");
        var token = XenAoe.Agents.ApiToken.ReadOrCreate(tokenFile);
        var port = FreeLoopbackPort();
        var options = new ControllerOptions
        {
            Name = "loopback-controller",
            Store = $"sqlite:{Path.Combine(directory, "state.db")}",
            Listen = [new IPEndPoint(IPAddress.Loopback, port)],
            TokenFile = tokenFile,
            // The hosts of these inventories are records nobody answers for: they must not be declared dead (and failed over) mid-run.
            DeadAfter = TimeSpan.FromHours(1),
        };
        var stop = new CancellationTokenSource();
        var run = Task.Run(() => ControllerDaemon.RunAsync(options, stop.Token));
        var baseAddress = new Uri($"http://127.0.0.1:{port}/");
        using var probe = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        Exception? last = null;
        while (true)
        {
            if (run.IsCompleted)
            {
                System.IO.Directory.Delete(directory, recursive: true);
                await run.ConfigureAwait(false);
                throw new InvalidOperationException("the controller stopped before its API answered");
            }
            try
            {
                using var response = await probe.GetAsync("api/v1/health").ConfigureAwait(false);
                if (response.IsSuccessStatusCode)
                    break;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                // Not listening yet, or too slow to answer one probe on a busy machine: try again until the deadline.
                last = e;
            }
            if (DateTime.UtcNow > deadline)
            {
                await stop.CancelAsync().ConfigureAwait(false);
                throw new TimeoutException($"expected {baseAddress}api/v1/health to answer 200 within {timeout ?? TimeSpan.FromSeconds(30)}; last error: {last?.Message}");
            }
            await Task.Delay(20).ConfigureAwait(false);
        }
        return new LoopbackController(directory, token, baseAddress, stop, run);
    }

    /// <summary>A client of the API; with <paramref name="token"/> it sends <c>Authorization: Bearer TOKEN</c>.</summary>
    public HttpClient CreateClient(string? token)
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        if (token is not null)
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _run.WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        }
        finally
        {
            await _store.DisposeAsync().ConfigureAwait(false);
            _stop.Dispose();
            System.IO.Directory.Delete(Directory, recursive: true);
        }
    }

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
