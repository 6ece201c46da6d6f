using System.Globalization;

namespace XenAoe.Hypervisors.Qemu;

/// <summary>Builds the <c>qemu-system-x86_64</c> arguments for a <see cref="VmSpec"/>.</summary>
public static class QemuCommandLine
{
    /// <summary>
    /// The arguments (without the program) for <paramref name="spec"/> with its files in <paramref name="paths"/>.
    /// <paramref name="accelerator"/> must be resolved (not <see cref="Accelerator.Auto"/>). With
    /// <paramref name="incoming"/> QEMU waits for <c>migrate-incoming</c> (<c>-incoming defer</c>).
    /// </summary>
    public static IReadOnlyList<string> Build(VmSpec spec, VmPaths paths, Accelerator accelerator, bool incoming)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (accelerator == Accelerator.Auto)
            throw new ArgumentException("Resolve Auto to Kvm or Tcg before building the command line.", nameof(accelerator));
        var args = new List<string>(64)
        {
            "-name", $"guest={Escape(spec.Name)},debug-threads=on",
            "-uuid", spec.Uuid.ToString("D"),
            "-nodefaults", "-no-user-config",
            "-display", "none",
            "-machine", "pc",
            "-accel", accelerator == Accelerator.Kvm ? "kvm" : "tcg",
        };
        if (accelerator == Accelerator.Kvm)
            args.AddRange(["-cpu", "host"]);
        args.AddRange(
        [
            "-smp", spec.Cpus.ToString(CultureInfo.InvariantCulture),
            "-m", spec.MemoryMiB.ToString(CultureInfo.InvariantCulture),
            "-kernel", spec.Boot.KernelPath,
        ]);
        if (spec.Boot.InitrdPath is { Length: > 0 } initrd)
            args.AddRange(["-initrd", initrd]);
        args.AddRange(["-append", spec.Boot.KernelCommandLine]);

        // QMP: one control connection at a time; the driver holds it.
        args.AddRange(["-chardev", $"socket,id=qmp,path={Escape(paths.Qmp)},server=on,wait=off", "-mon", "chardev=qmp,mode=control"]);
        // The serial log is written by the chardev itself, so it keeps everything even while a user is attached to the socket.
        args.AddRange(
        [
            "-chardev", $"socket,id=serial0,path={Escape(paths.SerialSocket)},server=on,wait=off,logfile={Escape(paths.SerialLog)},logappend=on",
            "-serial", "chardev:serial0",
        ]);
        // A VGA device gives VNC a screen to show.
        args.AddRange(["-device", "VGA,id=video0"]);
        args.AddRange(["-vnc", spec.Vnc is { } vnc
            ? $"{Escape(vnc.Host)}:{vnc.Display.ToString(CultureInfo.InvariantCulture)}"
            : $"unix:{Escape(paths.VncSocket)}"]);

        foreach (var disk in spec.Disks)
        {
            var node = $"disk-{disk.Id}";
            args.AddRange(
            [
                "-blockdev",
                $"driver=nbd,node-name={node},server.type=unix,server.path={Escape(disk.NbdSocketPath)},export={Escape(disk.ExportName)},read-only={(disk.ReadOnly ? "on" : "off")}",
                "-device", $"virtio-blk-pci,id={disk.Id},drive={node}",
            ]);
        }
        foreach (var nic in spec.Nics)
        {
            var netdev = $"net-{nic.Id}";
            args.AddRange(
            [
                "-netdev", $"tap,id={netdev},ifname={nic.TapName},script=no,downscript=no",
                // romfile= skips the iPXE option ROM: nothing boots from the network with direct kernel boot.
                "-device", $"virtio-net-pci,id={nic.Id},netdev={netdev},mac={nic.Mac.ToLowerInvariant()},romfile=",
            ]);
        }
        if (incoming)
            args.AddRange(["-incoming", "defer"]);
        // -daemonize: the VM outlives the daemon that started it; the driver finds it again by pid file and QMP socket.
        args.AddRange(["-daemonize", "-pidfile", paths.PidFile]);
        return args;
    }

    /// <summary>QEMU's option syntax separates keys with commas; a literal comma in a value is written twice.</summary>
    public static string Escape(string value) => value.Replace(",", ",,", StringComparison.Ordinal);
}
