using System.Text.Json.Serialization;

namespace XenAoe.Storage;

public enum WriteCacheMode
{
    /// <summary>A write is acknowledged only once durable (fdatasync, shared by the writes of a group). The default: the Linux initiator never sends FLUSH.</summary>
    WriteThrough,

    /// <summary>Writes go to the page cache; FLUSH CACHE makes them durable. Only for battery-backed disk servers.</summary>
    WriteBack,
}

/// <summary>Everything a pool stores about one volume; persisted as <c>NAME.json</c> beside the data.</summary>
public sealed record VolumeSpec
{
    public required string Name { get; init; }
    public required ushort Shelf { get; init; }
    public required byte Slot { get; init; }

    /// <summary>Size in bytes, a multiple of 512. For a device-backed volume, the device's size.</summary>
    public required long SizeBytes { get; init; }

    public bool ReadOnly { get; init; }

    [JsonConverter(typeof(JsonStringEnumConverter<WriteCacheMode>))]
    public WriteCacheMode WriteCache { get; init; } = WriteCacheMode.WriteThrough;

    /// <summary>A block device or an existing image file holding the data instead of <c>NAME.img</c> in the pool directory.</summary>
    public string? Device { get; init; }

    /// <summary>The AoE config string, base64 (it is bytes, not text, on the wire).</summary>
    public string ConfigString { get; init; } = "";

    /// <summary>MACs allowed to talk to the target; empty means everyone.</summary>
    public IReadOnlyList<string> MacMask { get; init; } = [];

    /// <summary>MACs holding the AoE reservation; empty means unreserved.</summary>
    public IReadOnlyList<string> Reservation { get; init; } = [];

    [JsonIgnore]
    public string Address => $"e{Shelf}.{Slot}";
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(VolumeSpec))]
[JsonSerializable(typeof(List<VolumeSpec>))]
public sealed partial class StorageJsonContext : JsonSerializerContext;
