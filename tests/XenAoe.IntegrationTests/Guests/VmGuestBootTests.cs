using System.Globalization;
using System.Text.Json;
using Xunit.Abstractions;

namespace XenAoe.IntegrationTests.Guests;

/// <summary>
/// The lab's VM guest in real QEMU (TCG), booted from a copy of its root image with its NIC on a lab switch: it comes up,
/// serves its disk-backed counter over HTTP, answers on the serial console, survives resets with its counters, and powers
/// off cleanly on the ACPI power button with the counter on the disk image.
/// </summary>
/// <remarks>One class, so its guests boot one after another: the machine has two cores.</remarks>
[Trait("Category", "Integration")]
public sealed class VmGuestBootTests(ITestOutputHelper output)
{
    [Fact]
    public async Task The_guest_boots_from_its_disk_and_serves_a_counter_that_grows_and_a_JSON_status()
    {
        await using var lab = await VmGuestLab.CreateAsync(output.WriteLine);
        var guest = await lab.StartAsync();

        var ready = await lab.WaitForReadyAsync();
        output.WriteLine(FormattableString.Invariant($"QEMU start to READY: {ready.At.TotalSeconds:F1} s ({ready.Text})"));
        Assert.Equal("vm1", ready.Value("host"));
        Assert.Equal("10.77.1.10/24", ready.Value("ip"));
        Assert.Equal(1, ready.Number("boot"));
        Assert.Equal(0, ready.Number("counter"));

        var first = await lab.CounterAsync();
        var second = await Eventually.ValueAsync<long>(async () => await lab.CounterAsync() is var c && c > first ? c : null,
            TimeSpan.FromSeconds(10), $"GET /counter to grow past {first}");
        output.WriteLine($"GET /counter: {first}, then {second}");

        var status = await lab.GetAsync("cgi-bin/status");
        output.WriteLine($"GET /cgi-bin/status: {status.Trim()}");
        using var json = JsonDocument.Parse(status);
        var root = json.RootElement;
        Assert.True(root.GetProperty("counter").GetInt64() >= second, $"Expected the status counter to be at least {second}: {status}");
        Assert.Equal(1, root.GetProperty("boot").GetInt64());
        Assert.True(root.GetProperty("uptime").GetInt64() >= 0, status);
        Assert.Equal("vm1", root.GetProperty("hostname").GetString());
        Assert.Equal(0, root.GetProperty("ioErrors").GetInt64());
        Assert.DoesNotContain(guest.Lines, l => l.Text.StartsWith(VmGuestImage.IoErrorTag, StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_serial_console_shell_answers_a_typed_command_and_respawns_after_exit()
    {
        await using var lab = await VmGuestLab.CreateAsync(output.WriteLine);
        var guest = await lab.StartAsync();
        await lab.WaitForReadyAsync();

        await guest.SendLineAsync("echo XENAOE-ECHO $((6 * 7)) $(hostname)");
        var answer = await guest.WaitForLineAsync("XENAOE-ECHO 42 vm1", TimeSpan.FromSeconds(20));

        // busybox init starts a new shell about a second after the last one exits; what is typed in between is lost.
        await guest.SendLineAsync("exit");
        await guest.WaitForLineAsync(l => l.Index > answer.Index && l.Text.Contains("built-in shell", StringComparison.Ordinal),
            "a new shell on the serial console after 'exit'", TimeSpan.FromSeconds(20));
        await guest.SendLineAsync("echo XENAOE-ECHO again $((40 + 3))");
        await guest.WaitForLineAsync("XENAOE-ECHO again 43", TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task A_hard_reset_and_a_guest_reboot_each_count_a_boot_and_the_counter_continues_from_the_disk()
    {
        await using var lab = await VmGuestLab.CreateAsync(output.WriteLine);
        var guest = await lab.StartAsync();
        var ready = await lab.WaitForReadyAsync();
        var beforeReset = await Eventually.ValueAsync<long>(async () => await lab.CounterAsync() is var c && c >= 5 ? c : null,
            TimeSpan.FromSeconds(20), "GET /counter to reach 5");

        // system_reset: no shutdown, the disk keeps whatever was fsynced.
        await guest.QmpAsync("system_reset");
        ready = await lab.WaitForReadyAsync(ready.Index);
        output.WriteLine($"after system_reset: {ready.Text} (counter was {beforeReset})");
        Assert.Equal(2, ready.Number("boot"));
        Assert.True(ready.Number("counter") >= beforeReset, $"Expected the counter to continue from at least {beforeReset}: {ready.Text}");

        var beforeReboot = await Eventually.ValueAsync<long>(async () => await lab.CounterAsync() is var c && c > ready.Number("counter") ? c : null,
            TimeSpan.FromSeconds(20), $"GET /counter to grow past {ready.Number("counter")} after the reset");
        await guest.SendLineAsync("reboot");
        var shutdown = await guest.WaitForLineAsync(l => l.Index > ready.Index && l.Text.StartsWith(VmGuestImage.UnmountedTag, StringComparison.Ordinal),
            "the root to be remounted read-only before the reboot", TimeSpan.FromSeconds(30));
        ready = await lab.WaitForReadyAsync(shutdown.Index);
        output.WriteLine($"after reboot: {ready.Text} (counter was {beforeReboot})");
        Assert.Equal(3, ready.Number("boot"));
        Assert.True(ready.Number("counter") >= beforeReboot, $"Expected the counter to continue from at least {beforeReboot}: {ready.Text}");
        Assert.True(await lab.CounterAsync() >= ready.Number("counter"), "Expected GET /counter to serve the counter read back from the disk.");
    }

    [Fact]
    public async Task The_power_button_powers_off_cleanly_and_the_disk_image_holds_the_counter()
    {
        await using var lab = await VmGuestLab.CreateAsync(output.WriteLine);
        var guest = await lab.StartAsync();
        await lab.WaitForReadyAsync();
        var served = await Eventually.ValueAsync<long>(async () => await lab.CounterAsync() is var c && c >= 3 ? c : null,
            TimeSpan.FromSeconds(20), "GET /counter to reach 3");

        await guest.QmpAsync("system_powerdown");
        await guest.WaitForLineAsync(VmGuestImage.PowerButtonTag, TimeSpan.FromSeconds(20));
        var shutdown = await guest.WaitForLineAsync(VmGuestImage.ShutdownTag, TimeSpan.FromSeconds(20));
        await guest.WaitForLineAsync(VmGuestImage.UnmountedTag, TimeSpan.FromSeconds(20));
        await guest.WaitForExitAsync(TimeSpan.FromSeconds(30));

        var onDisk = long.Parse((await lab.ReadDiskFileAsync(VmGuestImage.CounterPath)).Trim(), CultureInfo.InvariantCulture);
        var boots = long.Parse((await lab.ReadDiskFileAsync(VmGuestImage.BootCounterPath)).Trim(), CultureInfo.InvariantCulture);
        output.WriteLine($"served {served}, {shutdown.Text}, on the disk image: counter {onDisk}, boot {boots}");
        Assert.True(onDisk >= served, $"Expected the image to hold a counter of at least {served} (served over HTTP); it holds {onDisk}.");
        Assert.Equal(shutdown.Number("counter"), onDisk);
        Assert.Equal(1, boots);

        var state = (await Command.RunAsync("dumpe2fs", ["-h", lab.DiskPath])).EnsureSuccess().StdOut;
        Assert.Contains(state.Split('\n'), l => l.StartsWith("Filesystem state:", StringComparison.Ordinal) && l.TrimEnd().EndsWith(" clean", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_failed_counter_write_is_reported_on_the_console_and_counted_and_the_counter_resumes_when_the_disk_is_writable()
    {
        await using var lab = await VmGuestLab.CreateAsync(output.WriteLine);
        var guest = await lab.StartAsync();
        var ready = await lab.WaitForReadyAsync();

        // A read-only root makes every counter write fail, as a dead disk would, without touching the host's disk copy.
        await guest.SendLineAsync("until mount -o remount,ro /; do usleep 50000; done");
        var error = await guest.WaitForLineAsync(l => l.Index > ready.Index && l.Text.StartsWith(VmGuestImage.IoErrorTag, StringComparison.Ordinal),
            "a counter write to fail on the read-only root", TimeSpan.FromSeconds(20));
        output.WriteLine(error.Text);
        using (var status = JsonDocument.Parse(await lab.GetAsync("cgi-bin/status")))
            Assert.True(status.RootElement.GetProperty("ioErrors").GetInt64() >= 1, status.RootElement.ToString());
        var stuck = await lab.CounterAsync();

        await guest.SendLineAsync("mount -o remount,rw /");
        var resumed = await Eventually.ValueAsync<long>(async () => await lab.CounterAsync() is var c && c > stuck ? c : null,
            TimeSpan.FromSeconds(20), $"GET /counter to grow past {stuck} once the root is writable again");
        output.WriteLine($"counter held at {stuck} while writes failed, then {resumed}");
    }

    [Fact]
    public async Task Without_a_disk_the_initrd_says_so_on_the_console_and_powers_off()
    {
        await using var lab = await VmGuestLab.CreateAsync(output.WriteLine);
        var guest = await lab.StartAsync(withDisk: false, extraKernelParameters: "xenaoe.roottimeout=3");

        var error = await guest.WaitForLineAsync(VmGuestImage.InitrdErrorTag, TimeSpan.FromSeconds(60));
        Assert.Contains("/dev/vda did not appear within 3s", error.Text, StringComparison.Ordinal);
        await guest.WaitForExitAsync(TimeSpan.FromSeconds(30));
    }
}
