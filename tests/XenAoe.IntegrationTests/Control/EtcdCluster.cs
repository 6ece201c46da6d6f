using System.Net;
using System.Net.Sockets;
using XenAoe.Control.Store;
using XenAoe.IntegrationTests.Infrastructure;

namespace XenAoe.IntegrationTests.Control;

/// <summary>
/// A real 3-member etcd cluster on loopback: free ports chosen at start, data under a temp directory, every member killed
/// by PID and the directory deleted on disposal.
/// </summary>
public sealed class EtcdCluster : IAsyncLifetime
{
    private readonly List<LabProcess?> _members = [];
    private readonly string _directory = Directory.CreateTempSubdirectory("xenaoe-etcd-").FullName;

    public IReadOnlyList<Uri> ClientUrls { get; private set; } = [];

    public async Task InitializeAsync()
    {
        var ports = FreePorts(6);
        var names = new[] { "m1", "m2", "m3" };
        ClientUrls = [.. Enumerable.Range(0, 3).Select(i => new Uri($"http://127.0.0.1:{ports[i]}"))];
        // etcd refuses URLs with a path, and Uri.ToString() adds "/".
        var clients = Enumerable.Range(0, 3).Select(i => $"http://127.0.0.1:{ports[i]}").ToArray();
        var peers = Enumerable.Range(0, 3).Select(i => $"http://127.0.0.1:{ports[3 + i]}").ToArray();
        var initial = string.Join(',', names.Zip(peers, (n, p) => $"{n}={p}"));
        for (var i = 0; i < 3; i++)
        {
            _members.Add(new LabProcess("etcd", [
                "--name", names[i], "--data-dir", Path.Combine(_directory, names[i]),
                "--listen-client-urls", clients[i], "--advertise-client-urls", clients[i],
                "--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", Path.GetFileName(_directory),
            ], $"etcd {names[i]}"));
        }
        try
        {
            await WaitUntilServingAsync();
        }
        catch
        {
            // xUnit does not dispose a fixture whose start failed: clean up here, then report.
            await DisposeAsync();
            throw;
        }
    }

    private async Task WaitUntilServingAsync()
    {
        await Eventually.TrueAsync(async () =>
        {
            foreach (var url in ClientUrls)
            {
                await using var one = new EtcdStateStore([url], "/health-check/", TimeSpan.FromSeconds(1));
                await one.PutAsync("ready", "1");
            }
            return true;
        }, TimeSpan.FromSeconds(30), $"every etcd member accepts a put. Output: {string.Join("\n", _members.Select(m => m!.Output))}");
    }

    /// <summary>SIGKILL to member <paramref name="index"/> (0-2).</summary>
    public async Task KillMemberAsync(int index)
    {
        await _members[index]!.KillAsync();
    }

    public async Task DisposeAsync()
    {
        foreach (var member in _members)
        {
            if (member is not null)
                await member.DisposeAsync();
        }
        _members.Clear();
        if (Directory.Exists(_directory))
            Directory.Delete(_directory, recursive: true);
    }

    private static int[] FreePorts(int count)
    {
        var sockets = new List<Socket>();
        try
        {
            for (var i = 0; i < count; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
                sockets.Add(socket);
            }
            return [.. sockets.Select(s => ((IPEndPoint)s.LocalEndPoint!).Port)];
        }
        finally
        {
            foreach (var socket in sockets)
                socket.Dispose();
        }
    }
}
