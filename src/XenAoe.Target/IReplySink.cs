using XenAoe.Aoe;

namespace XenAoe.Target;

/// <summary>Where the engine writes replies: a slot of a send batch on the hot path, a list in tests. A struct implementation avoids a virtual call per frame.</summary>
public interface IReplySink
{
    /// <summary>A buffer of at least <see cref="LinkInfo.FrameSize"/> bytes for the next reply; its contents are undefined.</summary>
    Span<byte> Next();

    /// <summary>Marks the buffer returned by <see cref="Next"/> as a reply of <paramref name="length"/> bytes (already padded).</summary>
    void Commit(int length);
}

/// <summary>The NIC a frame arrived on: our address there and how many sectors fit a frame on its link.</summary>
public readonly record struct LinkInfo(MacAddress LocalMac, int Mtu)
{
    public int MaxSectors => AoeProtocol.SectorsPerFrame(Mtu);

    /// <summary>Largest Ethernet frame (without FCS) the link carries.</summary>
    public int FrameSize => Mtu + 14;
}
