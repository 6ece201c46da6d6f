using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Xunit.Abstractions;
using XenAoe.Hypervisors;
using XenAoe.Hypervisors.Qemu;
using XenAoe.IntegrationTests.Infrastructure;

namespace XenAoe.IntegrationTests.Hypervisors;

/// <summary>
/// <see cref="QemuDriver"/> against real <c>qemu-system-x86_64</c> (TCG) running the <see cref="CounterGuest"/>.
/// Migrations run between two driver instances with separate run directories (two simulated hosts) over loopback.
/// </summary>
[Trait("Category", "Integration")]
public sealed class QemuDriverTests(CounterGuest guest, ITestOutputHelper output) : IClassFixture<CounterGuest>
{
    private static readonly TimeSpan s_boot = TimeSpan.FromSeconds(90);
    private static readonly TimeSpan s_step = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_started_guest_counts_on_its_serial_log_and_reports_running_under_tcg()
    {
        await using var lab = new HypervisorLab();
        var driver = lab.Driver("host1");

        var started = await driver.StartAsync(guest.Spec("vm1"));
        await WaitForTicksAsync(started.Consoles.SerialLogPath, 5);
        var info = await driver.InfoAsync("vm1");

        Assert.NotNull(info);
        Assert.Equal(VmState.Running, info.State);
        Assert.Equal(Accelerator.Tcg, info.Accelerator);
        Assert.NotNull(info.Pid);
        Assert.True(File.Exists(info.Consoles.SerialSocketPath), "serial socket exists");
        Assert.Equal("vm1", Assert.Single(await driver.ListAsync()).Name);
        Assert.Null(await driver.InfoAsync("nosuchvm"));
    }

    [Fact]
    public async Task An_nbd_disk_and_a_tap_nic_appear_in_the_guest()
    {
        Root.Require();
        await using var network = await NetworkLab.CreateAsync();
        var tap = await network.AddTapAsync();
        await using var lab = new HypervisorLab();
        var image = Path.Combine(lab.Root, "disk.img");
        await using (var file = File.Create(image))
        {
            file.SetLength(16 << 20);
            file.Write("XENAOE-DISK-MARK-7731..."u8);
        }
        var nbdSocket = Path.Combine(lab.Root, "nbd.sock");
        await using var nbdkit = await StartNbdkitAsync(nbdSocket, image);
        // QEMU runs in the switch namespace, where the TAP is.
        var driver = lab.Driver("host1", network.SwitchNamespace);
        var spec = guest.Spec("disky") with
        {
            Disks = [new VmDisk("root", nbdSocket, "", ReadOnly: true)],
            Nics = [new VmNic("eth0", tap, "52:54:00:12:34:56")],
        };

        var log = (await driver.StartAsync(spec)).Consoles.SerialLogPath;

        await Eventually.TrueAsync(() => CounterGuest.Lines(log).Any(l => l.EndsWith("XENAOE-DISK: XENAOE-DISK-MARK-7731...", StringComparison.Ordinal)), s_boot,
            "the guest to read the mark from the start of the NBD disk");
        await Eventually.TrueAsync(() => CounterGuest.Lines(log).Any(l => l.EndsWith("XENAOE-NIC: 52:54:00:12:34:56", StringComparison.Ordinal)), s_step,
            "the guest to see eth0 with the spec's MAC");
        await driver.KillAsync("disky");
    }

    [Fact]
    public async Task The_vnc_endpoint_answers_with_an_RFB_banner_on_a_unix_socket_and_on_tcp()
    {
        await using var lab = new HypervisorLab();
        var driver = lab.Driver("host1");
        var display = HypervisorLab.FreePortAbove(5900) - 5900;

        var onUnix = await driver.StartAsync(guest.Spec("vnc-unix"));
        var onTcp = await driver.StartAsync(guest.Spec("vnc-tcp", new VncListen("127.0.0.1", display)));

        Assert.StartsWith("unix:", onUnix.Consoles.Vnc, StringComparison.Ordinal);
        Assert.Equal($"tcp:127.0.0.1:{5900 + display}", onTcp.Consoles.Vnc);
        var unixBanner = await ReadBannerAsync(new UnixDomainSocketEndPoint(onUnix.Consoles.Vnc["unix:".Length..]), AddressFamily.Unix);
        var tcpBanner = await ReadBannerAsync(new IPEndPoint(IPAddress.Loopback, 5900 + display), AddressFamily.InterNetwork);
        output.WriteLine($"VNC banners: {unixBanner.Trim()} / {tcpBanner.Trim()}");
        Assert.StartsWith("RFB 003.00", unixBanner, StringComparison.Ordinal);
        Assert.StartsWith("RFB 003.00", tcpBanner, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reboot_resets_the_guest_so_it_boots_again_and_the_counter_restarts()
    {
        await using var lab = new HypervisorLab();
        var driver = lab.Driver("host1");
        var log = (await driver.StartAsync(guest.Spec("vm1"))).Consoles.SerialLogPath;
        await WaitForTicksAsync(log, 10);

        await driver.RebootAsync("vm1");

        await Eventually.TrueAsync(() => CounterGuest.BootCount(log) == 2 && TicksAfterLastBoot(log) is [1, ..], s_boot,
            "a second XENAOE-BOOT line followed by XENAOE-TICK 1");
        Assert.Equal(VmState.Running, (await driver.InfoAsync("vm1"))!.State);
    }

    [Fact]
    public async Task Graceful_stop_of_a_guest_that_ignores_acpi_forces_it_off_after_the_grace_time()
    {
        await using var lab = new HypervisorLab();
        var driver = lab.Driver("host1");
        var log = (await driver.StartAsync(guest.Spec("vm1"))).Consoles.SerialLogPath;
        await WaitForTicksAsync(log, 3);
        var grace = TimeSpan.FromSeconds(3);

        var clock = Stopwatch.StartNew();
        var outcome = await driver.StopAsync("vm1", grace);
        clock.Stop();

        var info = await driver.InfoAsync("vm1");
        output.WriteLine($"stop took {clock.Elapsed.TotalSeconds:0.00} s: {outcome}; {info!.StateDetail}");
        Assert.Equal(StopOutcome.Forced, outcome);
        Assert.True(clock.Elapsed >= grace, $"Forced only after the {grace.TotalSeconds} s grace time, not after {clock.Elapsed.TotalSeconds:0.00} s.");
        Assert.Equal(VmState.Stopped, info.State);
        Assert.Null(info.Pid);
        Assert.Contains("forced", info.StateDetail, StringComparison.Ordinal);
        Assert.Equal(StopOutcome.AlreadyStopped, await driver.StopAsync("vm1", grace));
    }

    [Fact]
    public async Task A_guest_that_powers_itself_off_is_reported_stopped_by_guest_shutdown()
    {
        await using var lab = new HypervisorLab();
        var driver = lab.Driver("host1");
        await driver.StartAsync(guest.Spec("vm1", powerOffAfter: 5));

        var info = await Eventually.ReferenceAsync(async () => await driver.InfoAsync("vm1") is { IsAlive: false } i ? i : null, s_boot,
            "the guest to power itself off after 5 ticks");

        output.WriteLine($"{info.State}: {info.StateDetail}");
        Assert.Equal(VmState.Stopped, info.State);
        Assert.Equal("guest-shutdown", info.StateDetail);
    }

    [Fact]
    public async Task A_qemu_killed_with_signal_9_is_reported_as_crashed_and_not_running()
    {
        await using var lab = new HypervisorLab();
        var driver = lab.Driver("host1");
        var started = await driver.StartAsync(guest.Spec("vm1"));
        await WaitForTicksAsync(started.Consoles.SerialLogPath, 3);

        Assert.True(Signal.Send(started.Pid!.Value, Signal.Kill));

        var info = await Eventually.ReferenceAsync(async () => await driver.InfoAsync("vm1") is { IsAlive: false } i ? i : null, s_step,
            "the killed VM to be reported without a process");
        output.WriteLine($"{info.State}: {info.StateDetail}");
        Assert.Equal(VmState.Crashed, info.State);
    }

    [Fact]
    public async Task A_new_driver_on_the_same_run_directory_re_adopts_the_running_vm()
    {
        await using var lab = new HypervisorLab();
        var first = lab.Driver("host1");
        var started = await first.StartAsync(guest.Spec("vm1"));
        await WaitForTicksAsync(started.Consoles.SerialLogPath, 3);

        await first.DisposeAsync();
        var second = lab.Driver("host1");
        var listed = Assert.Single(await second.ListAsync());

        Assert.Equal("vm1", listed.Name);
        Assert.Equal(started.Pid, listed.Pid);
        Assert.Equal(VmState.Running, listed.State);
        Assert.Equal(Accelerator.Tcg, listed.Accelerator);
        // The adopted VM is fully controllable: reboot works through the new QMP connection.
        await second.RebootAsync("vm1");
        await Eventually.TrueAsync(() => CounterGuest.BootCount(started.Consoles.SerialLogPath) == 2, s_boot, "the adopted VM to boot again after reboot");
    }

    [Fact]
    public async Task Live_migration_moves_the_running_guest_and_it_keeps_counting_on_the_destination()
    {
        await using var lab = new HypervisorLab();
        var source = lab.Driver("src");
        var destination = lab.Driver("dst");
        var spec = guest.Spec("mover");
        var sourceLog = (await source.StartAsync(spec)).Consoles.SerialLogPath;
        await WaitForTicksAsync(sourceLog, 20);
        var uri = $"tcp:127.0.0.1:{HypervisorLab.FreePort()}";

        var incoming = await destination.PrepareIncomingAsync(spec, uri);
        Assert.Equal(VmState.Incoming, incoming.State);
        await source.MigrateAsync("mover", uri);
        var status = await WaitForMigrationAsync(source, "mover");

        output.WriteLine($"migration {status.State}: total {status.TotalTime?.TotalMilliseconds} ms, downtime {status.Downtime?.TotalMilliseconds} ms, " +
            $"RAM {status.RamTransferred} of {status.RamTotal} bytes");
        Assert.Equal(MigrationState.Completed, status.State);
        Assert.NotNull(status.Downtime);
        // The source is paused in postmigrate now: its log is final, and finalizing removes it.
        var lastOnSource = CounterGuest.LastTick(sourceLog);
        await destination.FinalizeDestinationAsync("mover", succeeded: true);
        await source.FinalizeSourceAsync("mover", succeeded: true);

        Assert.Null(await source.InfoAsync("mover"));
        var moved = await destination.InfoAsync("mover");
        Assert.Equal(VmState.Running, moved!.State);
        var firstOnDestination = await Eventually.ValueAsync(
            () => Task.FromResult(CounterGuest.Ticks(moved.Consoles.SerialLogPath) is [var first, ..] ? first : (long?)null), s_step,
            "a tick on the destination's serial log");
        output.WriteLine($"last tick on the source {lastOnSource}, first on the destination {firstOnDestination}");
        Assert.InRange(firstOnDestination, lastOnSource + 1, lastOnSource + 3);
        Assert.Equal(0, CounterGuest.BootCount(moved.Consoles.SerialLogPath));
        await WaitForTicksAsync(moved.Consoles.SerialLogPath, firstOnDestination + 10);
    }

    [Fact]
    public async Task A_migration_to_a_port_nobody_listens_on_fails_and_the_vm_keeps_running_on_the_source()
    {
        await using var lab = new HypervisorLab();
        var source = lab.Driver("src");
        var log = (await source.StartAsync(guest.Spec("stayer"))).Consoles.SerialLogPath;
        await WaitForTicksAsync(log, 5);

        await source.MigrateAsync("stayer", $"tcp:127.0.0.1:{HypervisorLab.FreePort()}");
        var status = await WaitForMigrationAsync(source, "stayer");
        output.WriteLine($"migration {status.State}: {status.Error}");
        await source.FinalizeSourceAsync("stayer", succeeded: false);

        Assert.Equal(MigrationState.Failed, status.State);
        Assert.Equal(VmState.Running, (await source.InfoAsync("stayer"))!.State);
        await WaitForTicksAsync(log, CounterGuest.LastTick(log) + 5);
    }

    [Fact]
    public async Task A_migration_whose_destination_dies_midway_leaves_the_vm_running_on_the_source_only()
    {
        await using var lab = new HypervisorLab();
        var source = lab.Driver("src");
        var destination = lab.Driver("dst");
        var spec = guest.Spec("halfway");
        var log = (await source.StartAsync(spec)).Consoles.SerialLogPath;
        await WaitForTicksAsync(log, 5);
        var uri = $"tcp:127.0.0.1:{HypervisorLab.FreePort()}";
        await destination.PrepareIncomingAsync(spec, uri);

        // 2 MB/s: 128 MiB of RAM takes over a minute, so the migration is surely under way when the destination goes.
        await source.MigrateAsync("halfway", uri, new MigrationOptions { MaxBandwidth = 2_000_000 });
        await Eventually.TrueAsync(async () => (await source.MigrationStatusAsync("halfway")).RamTransferred > 1_000_000, s_step,
            "the migration to have sent its first megabyte");
        Assert.Equal(VmState.Migrating, (await source.InfoAsync("halfway"))!.State);
        Assert.Equal(VmState.Incoming, (await destination.InfoAsync("halfway"))!.State);
        await destination.FinalizeDestinationAsync("halfway", succeeded: false);
        var status = await WaitForMigrationAsync(source, "halfway");
        await source.FinalizeSourceAsync("halfway", succeeded: false);

        output.WriteLine($"migration {status.State}: {status.Error}");
        Assert.Equal(MigrationState.Failed, status.State);
        Assert.Null(await destination.InfoAsync("halfway"));
        Assert.Equal(VmState.Running, (await source.InfoAsync("halfway"))!.State);
        await WaitForTicksAsync(log, CounterGuest.LastTick(log) + 5);
    }

    /// <summary><c>nbdkit -f -U SOCK file FILE</c>, ready once its socket exists; disposal kills it by PID.</summary>
    private static async Task<NbdkitProcess> StartNbdkitAsync(string socket, string image)
    {
        var process = Process.Start(new ProcessStartInfo("nbdkit", ["-f", "-U", socket, "file", image]) { UseShellExecute = false })
            ?? throw new InvalidOperationException("Could not start nbdkit.");
        var nbdkit = new NbdkitProcess(process);
        try
        {
            await Eventually.TrueAsync(() => File.Exists(socket), s_step, $"nbdkit to create {socket}");
            return nbdkit;
        }
        catch
        {
            await nbdkit.DisposeAsync();
            throw;
        }
    }

    private sealed class NbdkitProcess(Process process) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            if (!process.HasExited)
                Signal.Send(process.Id, Signal.Kill);
            await process.WaitForExitAsync();
            process.Dispose();
        }
    }

    private static async Task<MigrationStatus> WaitForMigrationAsync(IHypervisorDriver driver, string name) =>
        await Eventually.ReferenceAsync(async () => await driver.MigrationStatusAsync(name) is { IsFinished: true } s ? s : null,
            TimeSpan.FromSeconds(180), $"the migration of {name} to finish");

    private static Task WaitForTicksAsync(string serialLog, long atLeast) =>
        Eventually.TrueAsync(() => CounterGuest.LastTick(serialLog) >= atLeast, s_boot, $"XENAOE-TICK {atLeast} or later in {serialLog}");

    private static List<long> TicksAfterLastBoot(string serialLog)
    {
        var lines = CounterGuest.Lines(serialLog);
        var boot = lines.ToList().FindLastIndex(l => l.EndsWith(CounterGuest.BootLine, StringComparison.Ordinal));
        var ticks = new List<long>();
        foreach (var line in lines.Skip(boot + 1))
        {
            var at = line.LastIndexOf("XENAOE-TICK ", StringComparison.Ordinal);
            if (at >= 0 && long.TryParse(line.AsSpan(at + "XENAOE-TICK ".Length), out var n))
                ticks.Add(n);
        }
        return ticks;
    }

    private static async Task<string> ReadBannerAsync(EndPoint endPoint, AddressFamily family)
    {
        using var socket = new Socket(family, SocketType.Stream, family == AddressFamily.Unix ? ProtocolType.Unspecified : ProtocolType.Tcp);
        using var deadline = new CancellationTokenSource(s_step);
        await socket.ConnectAsync(endPoint, deadline.Token);
        var banner = new byte[12];
        var read = 0;
        while (read < banner.Length)
        {
            var n = await socket.ReceiveAsync(banner.AsMemory(read), SocketFlags.None, deadline.Token);
            if (n == 0)
                break;
            read += n;
        }
        return Encoding.ASCII.GetString(banner, 0, read);
    }
}
