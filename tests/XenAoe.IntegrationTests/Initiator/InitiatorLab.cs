using System.Diagnostics;
using System.Globalization;
using XenAoe.Aoe;
using XenAoe.Initiator;
using XenAoe.IntegrationTests.DiskServer;
using XenAoe.IntegrationTests.Infrastructure;

namespace XenAoe.IntegrationTests.Initiator;

/// <summary>
/// A lab with a disk host and a client host; our initiator runs in the client's namespace (its sockets are opened there by
/// <see cref="LabHost.Invoke{T}"/>). The target is either our disk server or vblade. Disposal stops the initiator, then the lab.
/// </summary>
internal sealed class InitiatorLab : IAsyncDisposable
{
    public const string Volume = "vm1";
    public static readonly AoeAddress Address = new(1, 0);

    private readonly List<IAsyncDisposable> _owned = [];
    private readonly List<string> _images = [];

    private InitiatorLab(NetworkLab lab, LabHost disk, LabHost client)
    {
        Lab = lab;
        DiskHost = disk;
        Client = client;
    }

    public NetworkLab Lab { get; }
    public LabHost DiskHost { get; }
    public LabHost Client { get; }

    /// <summary>Our disk server, when the lab uses it.</summary>
    public DiskServerHost? Disk { get; private set; }

    /// <summary>vblade, when the lab uses it.</summary>
    public LabProcess? Vblade { get; private set; }

    /// <summary>The file behind the target: the volume file of our disk server, or vblade's image.</summary>
    public string VolumeFile { get; private set; } = "";

    public AoeInitiator? Initiator { get; private set; }

    /// <param name="clientMtu">MTU of the client's links (both veth ends), to build MTU mismatches; the lab's 9000 by default.</param>
    public static async Task<InitiatorLab> CreateAsync(int switches = 1, int? clientMtu = null, int? diskMtu = null)
    {
        var lab = await NetworkLab.CreateAsync(switches);
        try
        {
            return new InitiatorLab(lab, await lab.AddHostAsync("disk", diskMtu), await lab.AddHostAsync("client", clientMtu));
        }
        catch
        {
            await lab.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts `xenaoe disk serve` on every NIC of the disk host with one volume at e1.0, its pool in <paramref name="poolParent"/> (the temp directory by default).</summary>
    public async Task StartOurTargetAsync(string size = "64M", string? poolParent = null)
    {
        Disk = DiskServerHost.Create(DiskHost, poolParent);
        _owned.Add(Disk);
        await Disk.CreateVolumeAsync(Volume, Address.ToString(), size);
        await Disk.StartAsync();
        VolumeFile = Disk.VolumeFile(Volume);
    }

    /// <summary>
    /// Starts our disk server with e1.0 served from an image file in <paramref name="directory"/> (adopted with --device), e.g.
    /// /dev/shm so that throughput measures the network path rather than this machine's disk.
    /// </summary>
    public async Task StartOurTargetOnFileAsync(string directory, long bytes)
    {
        VolumeFile = CreateImage(directory, "xenaoe", bytes);
        Disk = DiskServerHost.Create(DiskHost);
        _owned.Add(Disk);
        (await DiskServerHost.CliAsync("disk", "volume", "create", Volume, "--pool", Disk.Pool, "--address", Address.ToString(), "--device", VolumeFile)).EnsureSuccess();
        await Disk.StartAsync();
    }

    /// <summary>Starts vblade e1.0 on the disk host's eth0 over a sparse image file in <paramref name="directory"/> (the temp directory by default).</summary>
    public async Task StartVbladeAsync(long bytes = 64 << 20, string? directory = null, params string[] options)
    {
        VolumeFile = CreateImage(directory ?? Path.GetTempPath(), "vblade", bytes);
        Vblade = DiskHost.Start("vblade", [.. options, Address.Shelf.ToString(CultureInfo.InvariantCulture), Address.Slot.ToString(CultureInfo.InvariantCulture), "eth0", VolumeFile]);
        await Vblade.WaitForOutputAsync(" sectors", TimeSpan.FromSeconds(15));
    }

    private string CreateImage(string directory, string name, long bytes)
    {
        var path = Path.Combine(directory, $"{Lab.Prefix}-{name}.img");
        using (var file = File.Create(path))
            file.SetLength(bytes);
        _images.Add(path);
        return path;
    }

    public AoeInitiator StartInitiator(AoeInitiatorOptions? options = null)
    {
        options = (options ?? new AoeInitiatorOptions()) with { Interfaces = Client.Nics };
        Initiator = Client.Invoke(() => AoeInitiator.StartAsync(options).GetAwaiter().GetResult());
        return Initiator;
    }

    public async ValueTask DisposeAsync()
    {
        if (Initiator is not null)
            await Initiator.DisposeAsync();
        foreach (var owned in Enumerable.Reverse(_owned))
            await owned.DisposeAsync();
        await Lab.DisposeAsync();
        foreach (var image in _images)
            File.Delete(image);
    }

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/> in requests of <paramref name="requestBytes"/>, <paramref name="inFlight"/> at a time; returns MB/s.</summary>
    public static Task<double> WriteAsync(AoeDevice device, long offset, ReadOnlyMemory<byte> data, int requestBytes, int inFlight) =>
        RunAsync(data.Length, requestBytes, inFlight, (at, length) => device.WriteAsync(offset + at, data.Slice(at, length)));

    /// <summary>Reads into <paramref name="buffer"/> from <paramref name="offset"/> the same way; returns MB/s.</summary>
    public static Task<double> ReadAsync(AoeDevice device, long offset, Memory<byte> buffer, int requestBytes, int inFlight) =>
        RunAsync(buffer.Length, requestBytes, inFlight, (at, length) => device.ReadAsync(offset + at, buffer.Slice(at, length)));

    private static async Task<double> RunAsync(int total, int requestBytes, int inFlight, Func<int, int, ValueTask> io)
    {
        var clock = Stopwatch.StartNew();
        var running = new List<Task>(inFlight);
        for (var at = 0; at < total; at += requestBytes)
        {
            if (running.Count == inFlight)
            {
                var done = await Task.WhenAny(running);
                await done;
                running.Remove(done);
            }
            running.Add(io(at, Math.Min(requestBytes, total - at)).AsTask());
        }
        await Task.WhenAll(running);
        return total / clock.Elapsed.TotalSeconds / 1e6;
    }

    /// <summary>The bytes of the target's backing file at <paramref name="offset"/>.</summary>
    public byte[] ReadVolumeFile(long offset, int length)
    {
        using var file = File.OpenHandle(VolumeFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var bytes = new byte[length];
        var done = 0;
        while (done < length)
        {
            var n = RandomAccess.Read(file, bytes.AsSpan(done), offset + done);
            if (n == 0)
                break;
            done += n;
        }
        return bytes;
    }
}
