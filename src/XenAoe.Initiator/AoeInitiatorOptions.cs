namespace XenAoe.Initiator;

/// <summary>Settings of an <see cref="AoeInitiator"/>; validated by <see cref="AoeInitiator.StartAsync"/>.</summary>
public sealed record AoeInitiatorOptions
{
    /// <summary>Names of the local NICs to use (1..64), in the network namespace of the thread that starts the initiator.</summary>
    public IReadOnlyList<string> Interfaces { get; init; } = [];

    /// <summary>
    /// A path that has not answered anything for this long while frames were waiting on it is marked down: its frames go to
    /// the other paths and it is probed (query config) every <see cref="ProbeInterval"/> until it answers. 3 s by default,
    /// where the Linux driver waits 180 s.
    /// </summary>
    public TimeSpan PathTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// A request fails with <c>BlockDeviceException(Io)</c> when the target has answered nothing on any path for this long
    /// since the request was submitted (or since the last answer, if later), so a mirror above can fail the leg. 5 s by default.
    /// </summary>
    public TimeSpan DeviceTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Most frames one path keeps outstanding; the target's advertised buffer count lowers it. 128 (the Linux cap) by default.</summary>
    public int MaxWindow { get; init; } = 128;

    /// <summary>Window of a new or revived path, in frames; it grows by slow start from here. 4 by default.</summary>
    public int InitialWindow { get; init; } = 4;

    /// <summary>Floor of the retransmission timeout; 1 ms by default.</summary>
    public TimeSpan MinRetransmitTimeout { get; init; } = TimeSpan.FromMilliseconds(1);

    /// <summary>Ceiling of the retransmission timeout (and of its exponential back-off); 1 s by default.</summary>
    public TimeSpan MaxRetransmitTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Retransmission timeout of a path before its first round trip is measured; 50 ms by default.</summary>
    public TimeSpan InitialRetransmitTimeout { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>How often a down or suspect path is probed with a query config frame of full path size; 500 ms by default.</summary>
    public TimeSpan ProbeInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How often config queries are broadcast on every NIC to learn new targets and paths; 60 s by default, zero never.</summary>
    public TimeSpan DiscoveryInterval { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Time between retries of a control command (config, MAC mask, reservation, IDENTIFY); 200 ms by default.</summary>
    public TimeSpan ControlRetryInterval { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Frames per recvmmsg/sendmmsg; 32 by default.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Socket receive buffer per NIC in bytes (see PacketSocketOptions); 4 MiB by default.</summary>
    public int ReceiveBufferBytes { get; init; } = 4 << 20;

    /// <summary>Clock of every timeout; tests substitute a fake.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    internal void Validate()
    {
        if (Interfaces is null || Interfaces.Count is 0 or > 64)
            throw new ArgumentException("Give 1 to 64 interface names.", nameof(Interfaces));
        if (Interfaces.Distinct(StringComparer.Ordinal).Count() != Interfaces.Count)
            throw new ArgumentException("An interface is named twice.", nameof(Interfaces));
        Positive(PathTimeout, nameof(PathTimeout));
        Positive(DeviceTimeout, nameof(DeviceTimeout));
        Positive(MinRetransmitTimeout, nameof(MinRetransmitTimeout));
        Positive(ProbeInterval, nameof(ProbeInterval));
        Positive(ControlRetryInterval, nameof(ControlRetryInterval));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxRetransmitTimeout, MinRetransmitTimeout, nameof(MaxRetransmitTimeout));
        ArgumentOutOfRangeException.ThrowIfNegative(DiscoveryInterval.Ticks, nameof(DiscoveryInterval));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxWindow, 1, nameof(MaxWindow));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxWindow, 512, nameof(MaxWindow));
        ArgumentOutOfRangeException.ThrowIfLessThan(InitialWindow, 1, nameof(InitialWindow));
        ArgumentOutOfRangeException.ThrowIfLessThan(BatchSize, 1, nameof(BatchSize));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(BatchSize, 1024, nameof(BatchSize));
        ArgumentOutOfRangeException.ThrowIfNegative(ReceiveBufferBytes, nameof(ReceiveBufferBytes));
        ArgumentNullException.ThrowIfNull(Time, nameof(Time));
    }

    private static void Positive(TimeSpan value, string name) => ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(value, TimeSpan.Zero, name);
}
