using System.Globalization;
using System.Net;
using System.Net.Sockets;
using XenAoe.IntegrationTests.Infrastructure;

namespace XenAoe.IntegrationTests.Guests;

/// <summary>
/// One VM guest booted from a private copy of <see cref="VmGuestImageInfo.RootImagePath"/>, its NIC on a TAP in a
/// <see cref="NetworkLab"/> switch (MTU 1500), and a client host on the same switch that talks HTTP to it.
/// Disposal stops QEMU (by PID), deletes the lab's namespaces and the disk copy.
/// </summary>
public sealed class VmGuestLab : IAsyncDisposable
{
    public static readonly IPAddress GuestAddress = IPAddress.Parse("10.77.1.10");
    public static readonly IPAddress ClientAddress = IPAddress.Parse("10.77.1.2");
    public const string Hostname = "vm1";

    private readonly string _directory;
    private readonly HttpClient _http;

    private VmGuestLab(NetworkLab lab, LabHost client, string tap, VmGuestImageInfo image, string directory)
    {
        Lab = lab;
        Client = client;
        Tap = tap;
        Image = image;
        _directory = directory;
        DiskPath = Path.Combine(directory, "vm1-disk.img");
        _http = new HttpClient(new SocketsHttpHandler
        {
            // The socket is created inside the client's namespace, so the request leaves through its eth0 onto the lab switch.
            ConnectCallback = async (context, ct) =>
            {
                var socket = client.Invoke(() => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
                try
                {
                    await socket.ConnectAsync(context.DnsEndPoint, ct).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
            PooledConnectionLifetime = TimeSpan.Zero,
        })
        {
            BaseAddress = new Uri($"http://{GuestAddress}/"),
            Timeout = TimeSpan.FromSeconds(10),
        };
    }

    public NetworkLab Lab { get; }

    public LabHost Client { get; }

    public string Tap { get; }

    public VmGuestImageInfo Image { get; }

    /// <summary>The guest's disk: a copy of the root image that QEMU writes into.</summary>
    public string DiskPath { get; }

    public VmGuestNetwork Network { get; } = new(GuestAddress, 24, Hostname);

    public QemuGuest? Guest { get; private set; }

    public static async Task<VmGuestLab> CreateAsync(Action<string> log)
    {
        var image = await VmGuestImage.EnsureAsync(new Progress<string>(log)).ConfigureAwait(false);
        var lab = await NetworkLab.CreateAsync(switches: 1, mtu: 1500).ConfigureAwait(false);
        string? directory = null;
        try
        {
            var client = await lab.AddHostAsync("client").ConfigureAwait(false);
            (await client.RunAsync("ip", "addr", "add", $"{ClientAddress}/24", "dev", "eth0").ConfigureAwait(false)).EnsureSuccess();
            var tap = await lab.AddTapAsync().ConfigureAwait(false);
            directory = Directory.CreateTempSubdirectory("xenaoe-vm-guest-").FullName;
            var guestLab = new VmGuestLab(lab, client, tap, image, directory);
            File.Copy(image.RootImagePath, guestLab.DiskPath);
            return guestLab;
        }
        catch
        {
            await lab.DisposeAsync().ConfigureAwait(false);
            if (directory is not null)
                Directory.Delete(directory, recursive: true);
            throw;
        }
    }

    /// <summary>Boots the guest (256 MiB, TCG) from <see cref="DiskPath"/>, with the serial console open for typing.</summary>
    /// <param name="withDisk">False boots without a disk, to see the initrd give up.</param>
    /// <param name="extraKernelParameters">Appended to the image's kernel command line.</param>
    public async Task<QemuGuest> StartAsync(bool withDisk = true, string extraKernelParameters = "")
    {
        if (Guest is not null)
            throw new InvalidOperationException("The guest is already started.");
        Guest = await QemuGuest.StartAsync(Lab.SwitchNamespace, Tap, new QemuGuestOptions(Image.KernelPath, Image.InitrdPath)
        {
            Append = $"{Image.KernelCommandLine(Network)} {extraKernelParameters}".TrimEnd(),
            MemoryMiB = 256,
            Disks = withDisk ? [DiskPath] : [],
            ExitOnReboot = false,
            Console = true,
        }).ConfigureAwait(false);
        return Guest;
    }

    /// <summary>Waits for the next READY line after transcript line <paramref name="after"/> (-1: from the start).</summary>
    public Task<GuestLine> WaitForReadyAsync(int after = -1, TimeSpan? timeout = null) =>
        Guest!.WaitForLineAsync(l => l.Index > after && l.Text.StartsWith(VmGuestImage.ReadyTag, StringComparison.Ordinal),
            $"'{VmGuestImage.ReadyTag}' after line {after}", timeout ?? TimeSpan.FromSeconds(90));

    public Task<string> GetAsync(string path) => _http.GetStringAsync(path);

    /// <summary>GET /counter, parsed; retried until the guest answers (its ARP entry and httpd may take a moment).</summary>
    public Task<long> CounterAsync(TimeSpan? timeout = null) =>
        Eventually.ValueAsync<long>(async () => (long?)long.Parse((await GetAsync("counter").ConfigureAwait(false)).Trim(), CultureInfo.InvariantCulture),
            timeout ?? TimeSpan.FromSeconds(20), $"GET http://{GuestAddress}/counter to answer a number");

    /// <summary>Reads a file out of the (powered-off) disk image with debugfs, without mounting it.</summary>
    public async Task<string> ReadDiskFileAsync(string path)
    {
        var result = (await Command.RunAsync("debugfs", ["-R", $"cat {path}", DiskPath]).ConfigureAwait(false)).EnsureSuccess();
        return result.StdOut;
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        if (Guest is not null)
            await Guest.DisposeAsync().ConfigureAwait(false);
        await Lab.DisposeAsync().ConfigureAwait(false);
        if (Directory.Exists(_directory))
            Directory.Delete(_directory, recursive: true);
    }
}
