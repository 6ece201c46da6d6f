using XenAoe.Aoe;
using XenAoe.Storage;

namespace XenAoe.Target;

/// <summary>
/// One volume as the target serves it. The hot path reads immutable snapshots (<see cref="Mask"/>, <see cref="Reservation"/>,
/// <see cref="ConfigString"/>) without locks; changes take <see cref="Sync"/>, persist the new spec first and only then publish,
/// so a failed save changes nothing.
/// </summary>
public sealed class ExportedVolume
{
    private VolumeSpec _spec;

    internal ExportedVolume(VolumeSpec spec, BackingStore store)
    {
        _spec = spec;
        Store = store;
        Shelf = spec.Shelf;
        Slot = spec.Slot;
        Sectors = (ulong)store.Length / AoeProtocol.SectorSize;
        Identify = new byte[IdentifyDevice.Length];
        IdentifyDevice.Write(Identify, Sectors, serial: $"XENAOE-E{spec.Shelf}.{spec.Slot}", model: $"XenAoE {spec.Name}",
            firmware: "1.0", writeBack: spec.WriteCache == WriteCacheMode.WriteBack);
        Mask = [.. spec.MacMask.Select(MacAddress.Parse)];
        Reservation = [.. spec.Reservation.Select(MacAddress.Parse)];
        ConfigString = Convert.FromBase64String(spec.ConfigString);
    }

    public VolumeSpec Spec => Volatile.Read(ref _spec);
    public string Name => _spec.Name;
    public ushort Shelf { get; }
    public byte Slot { get; }
    public ulong Sectors { get; }
    public BackingStore Store { get; }
    public bool ReadOnly => Store.ReadOnly;

    internal byte[] Identify { get; }
    internal object Sync { get; } = new();
    internal MacAddress[] Mask { get; private set; }
    internal MacAddress[] Reservation { get; private set; }
    internal byte[] ConfigString { get; private set; }

    internal uint Key => Address(Shelf, Slot);

    internal static uint Address(ushort shelf, byte slot) => (uint)shelf << 8 | slot;

    internal bool Admits(MacAddress initiator)
    {
        var mask = Mask;
        return mask.Length == 0 || Array.IndexOf(mask, initiator) >= 0;
    }

    internal bool IsReservedAgainst(MacAddress initiator)
    {
        var holders = Reservation;
        return holders.Length != 0 && Array.IndexOf(holders, initiator) < 0;
    }

    /// <summary>Persists and publishes a change; call under <see cref="Sync"/>. Throws what <paramref name="persist"/> throws, leaving the old state.</summary>
    internal void Update(Action<VolumeSpec> persist, MacAddress[]? mask = null, MacAddress[]? reservation = null, byte[]? config = null)
    {
        var spec = Spec with
        {
            MacMask = mask is null ? _spec.MacMask : [.. mask.Select(m => m.ToString())],
            Reservation = reservation is null ? _spec.Reservation : [.. reservation.Select(m => m.ToString())],
            ConfigString = config is null ? _spec.ConfigString : Convert.ToBase64String(config),
        };
        persist(spec);
        Volatile.Write(ref _spec, spec);
        Mask = mask ?? Mask;
        Reservation = reservation ?? Reservation;
        ConfigString = config ?? ConfigString;
    }
}
