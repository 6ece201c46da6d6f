namespace XenAoe.IntegrationTests.Infrastructure;

/// <summary>
/// What a guest does once the kernel <c>aoe</c> driver has found its device: a busybox <c>sh</c> snippet run by the
/// guest's <c>/init</c> (see <see cref="GuestInit"/> for the helpers it may call), plus the boot parameters around it.
/// </summary>
/// <remarks>
/// The body runs with <c>$XA_DEV</c> (<c>e0.1</c>) and <c>$XA_BLK</c> (<c>/dev/etherd/e0.1</c>) set. It reports through
/// <c>xa_result "PASS ..."</c> / <c>xa_fail "why"</c>; the guest powers off after the body (or after <c>xa_fail</c>).
/// </remarks>
public sealed record GuestScript
{
    /// <summary>Shown in logs; letters, digits and dashes.</summary>
    public required string Name { get; init; }

    /// <summary>busybox <c>sh</c> code; it may call the <c>xa_*</c> helpers.</summary>
    public required string Body { get; init; }

    public int Shelf { get; init; }

    public int Slot { get; init; } = 1;

    /// <summary>MTU set on the guest's <c>eth0</c> before <c>aoe</c> loads; the driver sizes its frames from it at discovery.</summary>
    public int Mtu { get; init; } = 9000;

    /// <summary><c>aoe_deadsecs</c>: seconds without an answer before the driver fails the device (driver default 180).</summary>
    public int? AoeDeadSecs { get; init; }

    /// <summary><c>aoe_maxout</c>: the driver's cap on outstanding frames per target MAC (driver default 64; the target's buffer count caps it further).</summary>
    public int? AoeMaxOut { get; init; }

    /// <summary>How long the guest keeps writing to <c>/dev/etherd/discover</c> before it reports a FAIL line.</summary>
    public TimeSpan DiscoveryTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Guest-side watchdog from boot: when it fires the guest prints a FAIL line and powers off.</summary>
    public TimeSpan GuestTimeout { get; init; } = TimeSpan.FromMinutes(3);

    public GuestPattern Pattern { get; init; } = GuestPattern.Default;

    /// <summary>Kernel modules loaded before the network comes up (dependencies are added from <c>modules.dep</c>).</summary>
    public IReadOnlyList<string> Modules { get; init; } = ["virtio_pci", "virtio_net"];

    public string Device => $"e{Shelf}.{Slot}";
}
