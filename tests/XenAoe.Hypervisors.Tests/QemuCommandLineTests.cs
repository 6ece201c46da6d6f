using XenAoe.Hypervisors.Qemu;

namespace XenAoe.Hypervisors.Tests;

public sealed class QemuCommandLineTests
{
    private static readonly VmPaths s_paths = VmPaths.For("/run/xenaoe/vms", "web1");

    private static VmSpec Spec(VncListen? vnc = null) => new(
        "web1",
        Guid.Parse("5b1d3c1e-4f3a-4a5e-9a53-0d6f7e2c9b10"),
        Cpus: 2,
        MemoryMiB: 512,
        new VmBoot("/boot/vmlinuz", "/boot/initrd.gz", "console=ttyS0 root=/dev/vda"),
        [new VmDisk("root", "/run/xenaoe/nbd/web1-root.sock", "web1-root"), new VmDisk("iso", "/run/nbd,odd.sock", "cd", ReadOnly: true)],
        [new VmNic("eth0", "tap-web1-0", "52:54:00:AB:cd:01")],
        vnc);

    [Fact]
    public void Machine_memory_cpus_and_direct_kernel_boot_come_from_the_spec()
    {
        var args = QemuCommandLine.Build(Spec(), s_paths, Accelerator.Tcg, incoming: false);

        AssertPair(args, "-name", "guest=web1,debug-threads=on");
        AssertPair(args, "-uuid", "5b1d3c1e-4f3a-4a5e-9a53-0d6f7e2c9b10");
        AssertPair(args, "-accel", "tcg");
        AssertPair(args, "-smp", "2");
        AssertPair(args, "-m", "512");
        AssertPair(args, "-kernel", "/boot/vmlinuz");
        AssertPair(args, "-initrd", "/boot/initrd.gz");
        AssertPair(args, "-append", "console=ttyS0 root=/dev/vda");
        AssertPair(args, "-display", "none");
        Assert.Contains("-nodefaults", args);
        Assert.Contains("-no-user-config", args);
        Assert.DoesNotContain("-cpu", args);
        Assert.DoesNotContain("-incoming", args);
    }

    [Fact]
    public void Qmp_serial_with_log_and_pid_file_live_in_the_vm_run_directory()
    {
        var args = QemuCommandLine.Build(Spec(), s_paths, Accelerator.Tcg, incoming: false);

        AssertPair(args, "-chardev", "socket,id=qmp,path=/run/xenaoe/vms/web1/qmp.sock,server=on,wait=off");
        AssertPair(args, "-mon", "chardev=qmp,mode=control");
        AssertPair(args, "-chardev", "socket,id=serial0,path=/run/xenaoe/vms/web1/serial.sock,server=on,wait=off,logfile=/run/xenaoe/vms/web1/serial.log,logappend=on");
        AssertPair(args, "-serial", "chardev:serial0");
        AssertPair(args, "-pidfile", "/run/xenaoe/vms/web1/qemu.pid");
        Assert.Contains("-daemonize", args);
    }

    [Fact]
    public void Disks_are_nbd_blockdevs_on_virtio_blk_with_commas_in_paths_doubled()
    {
        var args = QemuCommandLine.Build(Spec(), s_paths, Accelerator.Tcg, incoming: false);

        AssertPair(args, "-blockdev", "driver=nbd,node-name=disk-root,server.type=unix,server.path=/run/xenaoe/nbd/web1-root.sock,export=web1-root,read-only=off");
        AssertPair(args, "-device", "virtio-blk-pci,id=root,drive=disk-root");
        AssertPair(args, "-blockdev", "driver=nbd,node-name=disk-iso,server.type=unix,server.path=/run/nbd,,odd.sock,export=cd,read-only=on");
    }

    [Fact]
    public void Nics_are_taps_on_virtio_net_without_an_option_rom()
    {
        var args = QemuCommandLine.Build(Spec(), s_paths, Accelerator.Tcg, incoming: false);

        AssertPair(args, "-netdev", "tap,id=net-eth0,ifname=tap-web1-0,script=no,downscript=no");
        AssertPair(args, "-device", "virtio-net-pci,id=eth0,netdev=net-eth0,mac=52:54:00:ab:cd:01,romfile=");
    }

    [Fact]
    public void Vnc_defaults_to_a_unix_socket_and_has_a_vga_screen()
    {
        var args = QemuCommandLine.Build(Spec(), s_paths, Accelerator.Tcg, incoming: false);

        AssertPair(args, "-vnc", "unix:/run/xenaoe/vms/web1/vnc.sock");
        AssertPair(args, "-device", "VGA,id=video0");
    }

    [Fact]
    public void Vnc_on_tcp_uses_host_and_display()
    {
        var args = QemuCommandLine.Build(Spec(new VncListen("127.0.0.1", 7)), s_paths, Accelerator.Tcg, incoming: false);

        AssertPair(args, "-vnc", "127.0.0.1:7");
    }

    [Fact]
    public void Kvm_uses_the_host_cpu_and_incoming_waits_for_migrate_incoming()
    {
        var args = QemuCommandLine.Build(Spec(), s_paths, Accelerator.Kvm, incoming: true);

        AssertPair(args, "-accel", "kvm");
        AssertPair(args, "-cpu", "host");
        AssertPair(args, "-incoming", "defer");
    }

    [Fact]
    public void Auto_must_be_resolved_before_building()
    {
        Assert.Throws<ArgumentException>(() => QemuCommandLine.Build(Spec(), s_paths, Accelerator.Auto, incoming: false));
    }

    [Theory]
    [InlineData("a")]
    [InlineData("web-1")]
    [InlineData("0123456789abcdef0123456789abcdef")]
    public void Valid_names_pass(string name)
    {
        (Spec() with { Name = name }).Validate();
    }

    [Theory]
    [InlineData("")]
    [InlineData("-web")]
    [InlineData("Web")]
    [InlineData("web_1")]
    [InlineData("web/1")]
    [InlineData("0123456789abcdef0123456789abcdef0")]
    public void Invalid_names_are_rejected(string name)
    {
        var error = Assert.Throws<ArgumentException>(() => (Spec() with { Name = name }).Validate());

        Assert.Contains("[a-z0-9]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Duplicate_device_ids_and_bad_macs_are_rejected()
    {
        Assert.Throws<ArgumentException>(() => (Spec() with { Nics = [new VmNic("root", "tap0", "52:54:00:00:00:01")] }).Validate());
        Assert.Throws<ArgumentException>(() => (Spec() with { Nics = [new VmNic("eth0", "tap0", "52:54:00:00:01")] }).Validate());
        Assert.Throws<ArgumentException>(() => (Spec() with { Cpus = 0 }).Validate());
    }

    private static void AssertPair(IReadOnlyList<string> args, string option, string value)
    {
        for (var i = 0; i + 1 < args.Count; i++)
        {
            if (args[i] == option && args[i + 1] == value)
                return;
        }
        Assert.Fail($"Expected `{option} {value}` in: {string.Join(' ', args)}");
    }
}
