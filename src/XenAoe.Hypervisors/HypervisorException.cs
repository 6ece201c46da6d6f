namespace XenAoe.Hypervisors;

/// <summary>A hypervisor operation failed; the message names the VM and the reason.</summary>
public class HypervisorException : Exception
{
    public HypervisorException(string message)
        : base(message)
    {
    }

    public HypervisorException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
