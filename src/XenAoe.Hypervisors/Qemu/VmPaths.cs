namespace XenAoe.Hypervisors.Qemu;

/// <summary>The files of one VM under the driver's run directory: <c>RUN/NAME/...</c>.</summary>
public sealed record VmPaths(string Directory)
{
    /// <summary>Longest unix socket path Linux accepts (sun_path is 108 bytes with the terminating NUL).</summary>
    public const int MaxSocketPath = 107;

    public static VmPaths For(string runDirectory, string name) => new(Path.Combine(runDirectory, name));

    public string Qmp => Path.Combine(Directory, "qmp.sock");

    public string SerialSocket => Path.Combine(Directory, "serial.sock");

    public string SerialLog => Path.Combine(Directory, "serial.log");

    public string VncSocket => Path.Combine(Directory, "vnc.sock");

    public string PidFile => Path.Combine(Directory, "qemu.pid");

    /// <summary>The spec and the accelerator chosen, so that a later driver instance can re-adopt the VM.</summary>
    public string Record => Path.Combine(Directory, "vm.json");

    /// <summary>Why the process ended, written by the driver or from QEMU's SHUTDOWN event; absent while running or after a crash.</summary>
    public string ExitReason => Path.Combine(Directory, "exit-reason");
}
