namespace XenAoe.Aoe;

/// <summary>Fixed numbers of AoE revision 11 (Coraid, 2009).</summary>
public static class AoeProtocol
{
    public const ushort EtherType = 0x88A2;
    public const byte Version = 1;

    /// <summary>Ethernet header (14) plus the AoE common header (10).</summary>
    public const int HeaderLength = 24;

    /// <summary>Common header plus the 12-byte ATA argument; data starts here.</summary>
    public const int AtaHeaderLength = 36;

    /// <summary>Query config argument before the config string.</summary>
    public const int ConfigHeaderLength = 32;

    public const int MacMaskHeaderLength = 28;
    public const int ReserveHeaderLength = 26;

    /// <summary>Minimum Ethernet frame without FCS. Every frame we send is padded to it: veth does not pad and aoetools ignores shorter replies.</summary>
    public const int MinimumFrameLength = 60;

    public const int MaxConfigStringLength = 1024;
    public const ushort BroadcastShelf = 0xFFFF;
    public const byte BroadcastSlot = 0xFF;
    public const int SectorSize = 512;

    /// <summary>Sectors one frame can carry on a link of this MTU, as every implementation computes it: 2 at 1500, 17 at 9000.</summary>
    public static int SectorsPerFrame(int mtu) => Math.Clamp((mtu - (AtaHeaderLength - 14)) / SectorSize, 0, 255);
}

public enum AoeCommand : byte
{
    Ata = 0,
    QueryConfig = 1,
    MacMaskList = 2,
    ReserveRelease = 3,
}

[Flags]
public enum AoeFlags : byte
{
    None = 0,
    Error = 0x4,
    Response = 0x8,
}

public enum AoeError : byte
{
    None = 0,
    UnrecognizedCommand = 1,
    BadArgument = 2,
    DeviceUnavailable = 3,
    ConfigStringPresent = 4,
    UnsupportedVersion = 5,
    TargetReserved = 6,
}

/// <summary>The CCmd nibble of a query config request.</summary>
public enum ConfigCommand : byte
{
    Read = 0,
    TestExact = 1,
    TestPrefix = 2,
    SetIfEmpty = 3,
    ForceSet = 4,
}

public enum MacMaskCommand : byte
{
    Read = 0,
    Edit = 1,
}

public enum MacMaskError : byte
{
    None = 0,
    Unspecified = 1,
    BadDirective = 2,
    ListFull = 3,
}

public enum MacMaskDirective : byte
{
    None = 0,
    Add = 1,
    Delete = 2,
}

public enum ReserveCommand : byte
{
    Read = 0,
    Set = 1,
    ForceSet = 2,
}
