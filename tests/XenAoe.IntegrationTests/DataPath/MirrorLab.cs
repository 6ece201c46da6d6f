using XenAoe.IntegrationTests.DiskServer;
using XenAoe.IntegrationTests.Infrastructure;

namespace XenAoe.IntegrationTests.DataPath;

/// <summary>
/// Two disk servers (our target, or vblade) on two switches, a CPU server running `xenaoe mirror serve` over them, and the NBD
/// socket a VM's QEMU would open. Everything is removed at the end.
/// </summary>
public sealed class MirrorLab : IAsyncDisposable
{
    public const long VolumeBytes = 64 << 20;

    /// <summary>Where mirrored data starts on a leg: superblock and bitmap, rounded up to 1 MiB.</summary>
    public const long DataOffset = 1 << 20;

    private readonly List<LabProcess> _vblades = [];
    private string? _vbladeDirectory;
    private LabProcess? _serve;

    private MirrorLab(NetworkLab lab, DiskServerHost disk1, DiskServerHost disk2, LabHost cpu)
    {
        Lab = lab;
        Disk1 = disk1;
        Disk2 = disk2;
        Cpu = cpu;
        Socket = Path.Combine(Path.GetTempPath(), $"{lab.Prefix}-nbd.sock");
    }

    public NetworkLab Lab { get; }
    public DiskServerHost Disk1 { get; }
    public DiskServerHost Disk2 { get; }
    public LabHost Cpu { get; }
    public string Socket { get; }
    public string Uri => $"nbd+unix:///vm1?socket={Socket}";
    public LabProcess Serve => _serve ?? throw new InvalidOperationException("the mirror is not being served");
    public string Leg1File => _vbladeDirectory is null ? Disk1.VolumeFile("leg") : Path.Combine(_vbladeDirectory, "e1.0.img");
    public string Leg2File => _vbladeDirectory is null ? Disk2.VolumeFile("leg") : Path.Combine(_vbladeDirectory, "e2.0.img");

    /// <summary>The same cluster with vblade as both disk servers: one vblade per NIC (vblade serves one interface), same file.</summary>
    public static async Task<MirrorLab> StartWithVbladeAsync()
    {
        var lab = await NetworkLab.CreateAsync(switches: 2);
        var mirror = new MirrorLab(lab, DiskServerHost.Create(await lab.AddHostAsync("disk1")), DiskServerHost.Create(await lab.AddHostAsync("disk2")),
            await lab.AddHostAsync("cpu"));
        try
        {
            mirror._vbladeDirectory = Directory.CreateTempSubdirectory($"xenaoe-vblade-{lab.Prefix}-").FullName;
            foreach (var (disk, shelf, file) in new[] { (mirror.Disk1, "1", mirror.Leg1File), (mirror.Disk2, "2", mirror.Leg2File) })
            {
                await using (var image = File.Create(file))
                    image.SetLength(VolumeBytes);
                foreach (var nic in disk.Host.Nics)
                    mirror._vblades.Add(disk.Host.Start("vblade", shelf, "0", nic, file));
            }
            (await mirror.MirrorCliAsync("create", "--assume-clean")).EnsureSuccess();
            return mirror;
        }
        catch
        {
            await mirror.DisposeAsync();
            throw;
        }
    }

    public static async Task<MirrorLab> StartAsync()
    {
        var lab = await NetworkLab.CreateAsync(switches: 2);
        try
        {
            var disk1 = DiskServerHost.Create(await lab.AddHostAsync("disk1"));
            var disk2 = DiskServerHost.Create(await lab.AddHostAsync("disk2"));
            var cpu = await lab.AddHostAsync("cpu");
            await disk1.CreateVolumeAsync("leg", "e1.0", $"{VolumeBytes}");
            await disk2.CreateVolumeAsync("leg", "e2.0", $"{VolumeBytes}");
            await disk1.StartAsync();
            await disk2.StartAsync();
            var mirror = new MirrorLab(lab, disk1, disk2, cpu);
            (await mirror.MirrorCliAsync("create", "--assume-clean")).EnsureSuccess();
            return mirror;
        }
        catch
        {
            await lab.DisposeAsync();
            throw;
        }
    }

    public Task<CommandResult> MirrorCliAsync(string verb, params string[] extra) =>
        Cpu.RunAsync("dotnet", [DiskServerHost.CliDll, "mirror", verb, "-i", "eth0", "-i", "eth1", "--leg", "e1.0", "--leg", "e2.0", .. extra],
            TimeSpan.FromSeconds(60));

    public async Task ServeAsync(params string[] extra)
    {
        _serve = Cpu.Start("dotnet", [DiskServerHost.CliDll, "mirror", "serve", "-i", "eth0", "-i", "eth1", "--leg", "e1.0", "--leg", "e2.0",
            "--nbd-socket", Socket, "--export", "vm1", .. extra]);
        await _serve.WaitForOutputAsync("serving export", TimeSpan.FromSeconds(30));
    }

    public async Task StopServingAsync()
    {
        if (_serve is null)
            return;
        await _serve.KillAsync(Signal.Terminate);
        await Eventually.TrueAsync(() => _serve.HasExited, TimeSpan.FromSeconds(20), "`xenaoe mirror serve` to exit after SIGTERM");
        await _serve.DisposeAsync();
        _serve = null;
    }

    /// <summary>The mirrored data area of a leg's volume file.</summary>
    public static byte[] DataOf(string legFile, long length)
    {
        using var file = File.OpenRead(legFile);
        var data = new byte[length];
        file.Position = DataOffset;
        file.ReadExactly(data);
        return data;
    }

    public async ValueTask DisposeAsync()
    {
        if (_serve is not null)
            await _serve.DisposeAsync();
        foreach (var vblade in _vblades)
            await vblade.DisposeAsync();
        if (_vbladeDirectory is not null)
            Directory.Delete(_vbladeDirectory, recursive: true);
        await Disk1.DisposeAsync();
        await Disk2.DisposeAsync();
        await Lab.DisposeAsync();
        File.Delete(Socket);
    }
}
