using System.Net;
using System.Net.Sockets;
using XenAoe.Hypervisors;
using XenAoe.Hypervisors.Qemu;

namespace XenAoe.IntegrationTests.Hypervisors;

/// <summary>
/// Run directories for <see cref="QemuDriver"/> instances (one per simulated host) under one short temporary folder.
/// Disposal disposes the drivers, SIGKILLs by PID every QEMU whose command line points into the folder (the VMs are
/// daemonized, so nothing else would end them) and deletes the folder.
/// </summary>
public sealed class HypervisorLab : IAsyncDisposable
{
    private readonly List<QemuDriver> _drivers = [];

    public HypervisorLab()
    {
        // Short: QMP, serial and VNC socket paths must fit in 107 bytes.
        Root = Directory.CreateTempSubdirectory("xhv-").FullName;
    }

    public string Root { get; }

    public string RunDirectory(string host) => Path.Combine(Root, host);

    /// <summary>A TCG driver on the run directory of <paramref name="host"/>; a second call for the same host simulates a daemon restart.</summary>
    /// <param name="networkNamespace">Where QEMU runs (the namespace holding the VMs' TAPs); null: this process's.</param>
    public QemuDriver Driver(string host, string? networkNamespace = null)
    {
        var driver = new QemuDriver(new QemuDriverOptions { RunDirectory = RunDirectory(host), Accelerator = Accelerator.Tcg, NetworkNamespace = networkNamespace });
        _drivers.Add(driver);
        return driver;
    }

    /// <summary>A loopback TCP port free at the time of the call.</summary>
    public static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    /// <summary>A loopback TCP port above <paramref name="floor"/> free at the time of the call (for VNC displays).</summary>
    public static int FreePortAbove(int floor)
    {
        for (var port = floor + 100 + Random.Shared.Next(2000); port < 65535; port++)
        {
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                probe.Bind(new IPEndPoint(IPAddress.Loopback, port));
                return port;
            }
            catch (SocketException)
            {
                // In use: try the next one.
            }
        }
        throw new InvalidOperationException($"No free loopback port above {floor}.");
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var driver in _drivers)
            await driver.DisposeAsync();
        var killed = new List<int>();
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), out var pid))
                continue;
            try
            {
                if (File.ReadAllText(Path.Combine(proc, "cmdline")).Contains(Root + "/", StringComparison.Ordinal) && Signal.Send(pid, Signal.Kill))
                    killed.Add(pid);
            }
            catch (IOException)
            {
                // The process exited while being looked at.
            }
            catch (UnauthorizedAccessException)
            {
                // Not ours to read, so not ours to kill.
            }
        }
        foreach (var pid in killed)
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            while (File.Exists($"/proc/{pid}/cmdline") && File.ReadAllText($"/proc/{pid}/cmdline").Length > 0 && DateTime.UtcNow < deadline)
                await Task.Delay(20);
        }
        Directory.Delete(Root, recursive: true);
    }
}
