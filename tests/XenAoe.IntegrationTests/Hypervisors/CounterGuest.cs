using System.Globalization;
using System.Text.RegularExpressions;
using XenAoe.Hypervisors;

namespace XenAoe.IntegrationTests.Hypervisors;

/// <summary>
/// The smallest useful guest: the cached Debian kernel and a busybox initramfs whose <c>/init</c> prints
/// <c>XENAOE-BOOT</c> once, then <c>XENAOE-TICK n</c> with n = 1, 2, 3... every 100 ms on ttyS0. It has no ACPI
/// daemon, so it ignores power-button requests. Built once per test class (xUnit class fixture).
/// </summary>
public sealed partial class CounterGuest : IAsyncLifetime
{
    public const string BootLine = "XENAOE-BOOT";

    private const string Init = """
        #!/bin/busybox sh
        /bin/busybox mount -t proc proc /proc
        echo XENAOE-BOOT
        for module in $(/bin/busybox cat /modules/order); do /bin/busybox insmod /modules/$module; done
        /bin/busybox mount -t sysfs sysfs /sys
        /bin/busybox mount -t devtmpfs devtmpfs /dev
        # Devices, for the tests that attach them: the first bytes of the disk and the NIC's MAC.
        if [ -b /dev/vda ]; then echo "XENAOE-DISK: $(/bin/busybox head -c 24 /dev/vda)"; fi
        if [ -e /sys/class/net/eth0/address ]; then echo "XENAOE-NIC: $(/bin/busybox cat /sys/class/net/eth0/address)"; fi
        # xenaoe.poweroff=N on the kernel command line: power off after N ticks.
        stop=0
        for word in $(/bin/busybox cat /proc/cmdline); do
          case "$word" in xenaoe.poweroff=*) stop=${word#xenaoe.poweroff=} ;; esac
        done
        i=0
        while true; do
          i=$((i + 1))
          echo "XENAOE-TICK $i"
          if [ "$i" = "$stop" ]; then /bin/busybox poweroff -f; fi
          /bin/busybox usleep 100000
        done
        """;

    private string? _directory;

    public string KernelPath { get; private set; } = "";

    public string InitrdPath { get; private set; } = "";

    public async Task InitializeAsync()
    {
        var kernel = await GuestKernel.EnsureAsync();
        KernelPath = kernel.VmlinuzPath;
        _directory = Directory.CreateTempSubdirectory("xenaoe-counter-").FullName;
        var root = Path.Combine(_directory, "root");
        foreach (var folder in new[] { "bin", "proc", "dev", "sys", "modules" })
            Directory.CreateDirectory(Path.Combine(root, folder));
        File.Copy("/bin/busybox", Path.Combine(root, "bin", "busybox"));
        var modules = kernel.ResolveModules("virtio_pci", "virtio_blk", "virtio_net");
        foreach (var module in modules)
            File.Copy(module, Path.Combine(root, "modules", Path.GetFileName(module)));
        File.WriteAllText(Path.Combine(root, "modules", "order"), string.Join('\n', modules.Select(Path.GetFileName)) + "\n");
        File.WriteAllText(Path.Combine(root, "init"), Init.ReplaceLineEndings("\n") + "\n");
        InitrdPath = Path.Combine(_directory, "counter.cpio.gz");
        const string Pack = "set -o pipefail; cd \"$1\" && chmod 0755 init bin/busybox && chmod 0644 modules/* && find . | cpio -o -H newc --quiet | gzip -1 > \"$2\"";
        (await Command.RunAsync("bash", ["-c", Pack, "bash", root, InitrdPath], TimeSpan.FromMinutes(1))).EnsureSuccess();
    }

    public Task DisposeAsync()
    {
        if (_directory is not null && Directory.Exists(_directory))
            Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    /// <summary>A 128 MiB, 1-CPU spec booting this guest; no disks or NICs. <paramref name="powerOffAfter"/>: ticks before the guest powers itself off.</summary>
    public VmSpec Spec(string name, VncListen? vnc = null, int? powerOffAfter = null) => new(
        name,
        Guid.NewGuid(),
        Cpus: 1,
        MemoryMiB: 128,
        new VmBoot(KernelPath, InitrdPath, "console=ttyS0 panic=-1 quiet" + (powerOffAfter is { } n ? $" xenaoe.poweroff={n}" : "")),
        [],
        [],
        vnc);

    /// <summary>The complete lines of a serial log (a partial last line is left out), without carriage returns.</summary>
    public static IReadOnlyList<string> Lines(string serialLog)
    {
        if (!File.Exists(serialLog))
            return [];
        using var stream = new FileStream(serialLog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        var text = reader.ReadToEnd();
        var end = text.LastIndexOf('\n');
        return end < 0 ? [] : text[..end].Split('\n').Select(l => l.TrimEnd('\r')).ToList();
    }

    /// <summary>The tick numbers in a serial log, in order.</summary>
    public static IReadOnlyList<long> Ticks(string serialLog) =>
        Lines(serialLog).Select(l => TickPattern().Match(l)).Where(m => m.Success)
            .Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();

    public static int BootCount(string serialLog) => Lines(serialLog).Count(l => l.EndsWith(BootLine, StringComparison.Ordinal));

    public static long LastTick(string serialLog) => Ticks(serialLog) is { Count: > 0 } ticks ? ticks[^1] : 0;

    [GeneratedRegex(@"XENAOE-TICK (\d+)$")]
    private static partial Regex TickPattern();
}
