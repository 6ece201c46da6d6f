using System.Net;
using System.Net.Sockets;
using XenAoe.Block;

namespace XenAoe.Nbd.Tests.Infrastructure;

/// <summary>An <see cref="NbdServer"/> on a unix socket in a fresh temporary directory, removed with everything in it on dispose.</summary>
public sealed class TestServer : IAsyncDisposable
{
    private readonly List<IBlockDevice> _devices = [];

    private TestServer(NbdServer server, ListLogger log, string directory)
    {
        Server = server;
        Log = log;
        Directory = directory;
        SocketPath = Path.Combine(directory, "nbd.sock");
    }

    public NbdServer Server { get; }
    public string Directory { get; }
    public string SocketPath { get; }
    public EndPoint EndPoint => new UnixDomainSocketEndPoint(SocketPath);
    /// <summary>What the server logged.</summary>
    public ListLogger Log { get; }

    /// <summary>The URI real clients (nbdinfo, qemu, fio) use for <paramref name="export"/>.</summary>
    public string Uri(string export) => $"nbd+unix:///{export}?socket={SocketPath}";

    public static async Task<TestServer> StartAsync(NbdServerOptions? options = null, params EndPoint[] more)
    {
        var directory = System.IO.Directory.CreateTempSubdirectory("xenaoe-nbd-").FullName;
        var log = new ListLogger();
        var server = new NbdServer(options ?? new NbdServerOptions(), log);
        var test = new TestServer(server, log, directory);
        await server.StartAsync([test.EndPoint, .. more], CancellationToken.None);
        return test;
    }

    /// <summary>Adds an export over an in-memory device that records its calls.</summary>
    public TestBlockDevice AddMemoryExport(string name, long size = 1 << 20, bool readOnly = false, string? description = null)
    {
        var device = new TestBlockDevice(size, readOnly);
        Server.AddExport(name, device, description);
        _devices.Add(device);
        return device;
    }

    /// <summary>Adds an export over a sparse file of <paramref name="size"/> bytes in the temporary directory; returns its path.</summary>
    public string AddFileExport(string name, long size, bool readOnly = false)
    {
        var path = Path.Combine(Directory, name.Length == 0 ? "default.img" : name + ".img");
        using (var file = File.Create(path))
            file.SetLength(size);
        var device = FileBlockDevice.Open(path, readOnly);
        Server.AddExport(name, device, $"file {Path.GetFileName(path)}");
        _devices.Add(device);
        return path;
    }

    public Task<NbdTestClient> ConnectAsync() => NbdTestClient.ConnectAsync(EndPoint);

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        foreach (var device in _devices)
            await device.DisposeAsync();
        System.IO.Directory.Delete(Directory, recursive: true);
    }
}
