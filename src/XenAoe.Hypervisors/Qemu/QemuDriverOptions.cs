namespace XenAoe.Hypervisors.Qemu;

public sealed class QemuDriverOptions
{
    /// <summary>Holds one folder per VM (sockets, pid file, serial log, spec). Keep paths short: unix sockets allow 107 bytes.</summary>
    public required string RunDirectory { get; init; }

    public string QemuBinary { get; init; } = "qemu-system-x86_64";

    /// <summary>Default <see cref="Accelerator.Auto"/>; the lab passes <see cref="Accelerator.Tcg"/> (KVM guests hang there).</summary>
    public Accelerator Accelerator { get; init; } = Accelerator.Auto;

    /// <summary>Starts QEMU inside this network namespace (<c>ip netns exec</c>), where the VMs' TAP devices live; null: this process's.</summary>
    public string? NetworkNamespace { get; init; }

    /// <summary>For QEMU to daemonize and for each QMP command. Default 30 s.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);
}
