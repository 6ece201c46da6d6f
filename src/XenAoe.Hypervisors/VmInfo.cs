namespace XenAoe.Hypervisors;

/// <summary>CPU virtualization a VM runs with.</summary>
public enum Accelerator
{
    /// <summary>KVM when <c>/dev/kvm</c> opens and <c>KVM_CREATE_VM</c> works; TCG otherwise.</summary>
    Auto,
    Kvm,
    Tcg,
}

public enum VmState
{
    Running,
    Paused,
    /// <summary>Started for an incoming migration and waiting for (or receiving) it.</summary>
    Incoming,
    /// <summary>Source side of a migration in progress (the VM still runs until the final switch-over).</summary>
    Migrating,
    /// <summary>The process is gone after an orderly end: guest power-off, stop, kill or quit by the driver.</summary>
    Stopped,
    /// <summary>The process is gone without an orderly end (killed from outside, crashed), or the guest stopped on an error.</summary>
    Crashed,
    /// <summary>The process is alive but its control channel does not answer (e.g. another client holds QMP).</summary>
    Unknown,
}

/// <summary>How <see cref="IHypervisorDriver.StopAsync"/> ended the VM.</summary>
public enum StopOutcome
{
    AlreadyStopped,
    /// <summary>The guest powered off within the grace time.</summary>
    Graceful,
    /// <summary>The guest was still running after the grace time and was forced off.</summary>
    Forced,
}

/// <summary>Where to reach a VM's consoles.</summary>
/// <param name="SerialSocketPath">Unix socket of the first serial port (connect to interact).</param>
/// <param name="SerialLogPath">Everything the serial port printed, kept even while a user is attached.</param>
/// <param name="Vnc">The VNC endpoint: <c>unix:PATH</c> or <c>tcp:HOST:PORT</c>.</param>
public sealed record VmConsoles(string SerialSocketPath, string SerialLogPath, string Vnc);

/// <summary>One VM as the host sees it now.</summary>
/// <param name="Pid">The hypervisor process, or null when it is gone.</param>
/// <param name="StateDetail">The hypervisor's own words (e.g. QEMU's run state, or why the VM stopped).</param>
public sealed record VmInfo(
    string Name,
    Guid Uuid,
    VmState State,
    string StateDetail,
    int? Pid,
    Accelerator Accelerator,
    int Cpus,
    int MemoryMiB,
    VmConsoles Consoles)
{
    public bool IsAlive => Pid is not null;
}
