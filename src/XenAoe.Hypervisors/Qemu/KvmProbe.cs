using System.Runtime.InteropServices;

namespace XenAoe.Hypervisors.Qemu;

/// <summary>Whether this host can create KVM virtual machines.</summary>
public static class KvmProbe
{
    private static readonly Lazy<string?> s_unavailableReason = new(Probe);

    /// <summary>True when <c>/dev/kvm</c> opens read-write and <c>KVM_CREATE_VM</c> succeeds (probed once per process).</summary>
    public static bool Available => s_unavailableReason.Value is null;

    /// <summary>Why <see cref="Available"/> is false; null when it is true.</summary>
    public static string? UnavailableReason => s_unavailableReason.Value;

    /// <summary>Turns <see cref="Accelerator.Auto"/> into the accelerator this host can use; the others pass through.</summary>
    public static Accelerator Resolve(Accelerator requested) =>
        requested != Accelerator.Auto ? requested : Available ? Accelerator.Kvm : Accelerator.Tcg;

    private static string? Probe()
    {
        var kvm = Interop.Open("/dev/kvm", Interop.OpenReadWriteCloexec);
        if (kvm < 0)
            return $"cannot open /dev/kvm: {Marshal.GetLastPInvokeErrorMessage()}";
        try
        {
            var vm = Interop.Ioctl(kvm, Interop.KvmCreateVm, 0);
            if (vm < 0)
                return $"KVM_CREATE_VM failed: {Marshal.GetLastPInvokeErrorMessage()}";
            Interop.Close(vm);
            return null;
        }
        finally
        {
            Interop.Close(kvm);
        }
    }
}
