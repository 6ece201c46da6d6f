using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Win32.SafeHandles;
using XenAoe.Aoe;

namespace XenAoe.Storage;

public enum StorageError
{
    /// <summary>The request itself is wrong: a bad name, size or address.</summary>
    Invalid,
    NotFound,

    /// <summary>The request clashes with existing state: a taken name or address, a reserved volume, a pool in use.</summary>
    Conflict,
}

/// <summary>A pool operation refused for a reason the user can act on.</summary>
public sealed class StorageException(string message, StorageError error = StorageError.Invalid) : Exception(message)
{
    public StorageError Error { get; } = error;
}

/// <summary>
/// A directory of volumes: <c>NAME.img</c> holds the data (unless the volume names a block device) and <c>NAME.json</c>
/// its <see cref="VolumeSpec"/>. One process owns a pool at a time (flock on <c>.lock</c>), so a CLI and a running daemon
/// never write the same metadata; metadata is replaced atomically (write, fsync, rename, fsync directory).
/// Not thread-safe: callers serialise changes.
/// </summary>
public sealed partial class StoragePool : IDisposable
{
    private const string LockFileName = ".lock";
    private readonly SafeFileHandle _lock;
    private readonly Dictionary<string, VolumeSpec> _volumes = new(StringComparer.Ordinal);

    private StoragePool(string directory, SafeFileHandle lockHandle)
    {
        Directory = directory;
        _lock = lockHandle;
    }

    public string Directory { get; }

    public IReadOnlyList<VolumeSpec> Volumes => [.. _volumes.Values.OrderBy(v => v.Shelf).ThenBy(v => v.Slot)];

    /// <summary>
    /// Opens (creating if needed) the pool and takes its lock; throws <see cref="StorageException"/> when another process still
    /// holds it after <paramref name="wait"/>. A CLI command that opened the pool directly holds the lock for milliseconds: a
    /// daemon started at that moment waits it out instead of failing (seen in the lab: a `disk volume list` racing a disk
    /// server's restart). A running daemon holds it for good, so a second one still fails, only later.
    /// </summary>
    public static StoragePool Open(string directory, TimeSpan wait = default)
    {
        directory = System.IO.Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(directory);
        var fd = Interop.Open(System.IO.Path.Combine(directory, LockFileName), Interop.ORdWr | Interop.OCreat | Interop.OCloexec, 0x180);
        if (fd < 0)
            throw new StorageException($"cannot open the lock of pool {directory}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        var deadline = Environment.TickCount64 + (long)wait.TotalMilliseconds;
        while (Interop.FLock(handle, Interop.LockExclusive | Interop.LockNonBlocking) != 0)
        {
            if (Environment.TickCount64 >= deadline)
            {
                handle.Dispose();
                throw new StorageException($"pool {directory} is in use by another process (a running disk daemon?)", StorageError.Conflict);
            }
            Thread.Sleep(50);
        }
        var pool = new StoragePool(directory, handle);
        try
        {
            pool.Load();
        }
        catch
        {
            pool.Dispose();
            throw;
        }
        return pool;
    }

    public VolumeSpec Get(string name) =>
        _volumes.TryGetValue(name, out var spec) ? spec : throw new StorageException($"no volume '{name}' in pool {Directory}", StorageError.NotFound);

    public string DataPath(VolumeSpec spec) => spec.Device ?? System.IO.Path.Combine(Directory, spec.Name + ".img");

    /// <summary>
    /// Creates a volume: a sparse file of <see cref="VolumeSpec.SizeBytes"/> in the pool, or adopts <see cref="VolumeSpec.Device"/>
    /// (a block device, or an existing image file such as one vblade served) with its own size. Adopted data is never deleted by the pool.
    /// </summary>
    public VolumeSpec Create(VolumeSpec spec)
    {
        ValidateName(spec.Name);
        if (_volumes.ContainsKey(spec.Name))
            throw new StorageException($"volume '{spec.Name}' already exists", StorageError.Conflict);
        ValidateAddress(spec.Shelf, spec.Slot, spec.Name);
        if (spec.Device is { } device)
        {
            using var store = BackingStore.Open(device, readOnly: true, WriteCacheMode.WriteBack);
            spec = spec with { SizeBytes = store.Length };
        }
        else
        {
            ValidateSize(spec.SizeBytes);
            var path = DataPath(spec);
            if (File.Exists(path))
                throw new StorageException($"{path} already exists; remove it or choose another name", StorageError.Conflict);
            using var file = File.Open(path, FileMode.CreateNew, FileAccess.ReadWrite);
            file.SetLength(spec.SizeBytes);
        }
        Save(spec);
        return spec;
    }

    /// <summary>Grows or shrinks a file-backed volume. Shrinking discards data past the new end, so it needs <paramref name="allowShrink"/>.</summary>
    public VolumeSpec Resize(string name, long sizeBytes, bool allowShrink)
    {
        var spec = Get(name);
        if (spec.Device is not null)
            throw new StorageException($"volume '{name}' is backed by {spec.Device}, which the pool does not own; resize that instead");
        ValidateSize(sizeBytes);
        if (sizeBytes < spec.SizeBytes && !allowShrink)
            throw new StorageException($"shrinking '{name}' from {spec.SizeBytes} to {sizeBytes} bytes discards data; confirm with --shrink");
        using (var file = File.Open(DataPath(spec), FileMode.Open, FileAccess.ReadWrite))
            file.SetLength(sizeBytes);
        spec = spec with { SizeBytes = sizeBytes };
        Save(spec);
        return spec;
    }

    /// <summary>Removes the volume's metadata and, for file-backed volumes, its data.</summary>
    public void Delete(string name)
    {
        var spec = Get(name);
        File.Delete(MetadataPath(name));
        if (spec.Device is null)
            File.Delete(DataPath(spec));
        _volumes.Remove(name);
        SyncDirectory();
    }

    /// <summary>Persists a changed spec (runtime state such as the config string, MAC mask and reservation included).</summary>
    public void Save(VolumeSpec spec)
    {
        var path = MetadataPath(spec.Name);
        var temp = path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write))
        {
            JsonSerializer.Serialize(stream, spec, StorageJsonContext.Default.VolumeSpec);
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
        SyncDirectory();
        _volumes[spec.Name] = spec;
    }

    public BackingStore OpenData(VolumeSpec spec) =>
        BackingStore.Open(DataPath(spec), spec.ReadOnly, spec.WriteCache);

    public void Dispose() => _lock.Dispose();

    private void Load()
    {
        foreach (var file in System.IO.Directory.EnumerateFiles(Directory, "*.json"))
        {
            VolumeSpec? spec;
            try
            {
                spec = JsonSerializer.Deserialize(File.ReadAllBytes(file), StorageJsonContext.Default.VolumeSpec);
            }
            catch (JsonException e)
            {
                throw new StorageException($"{file} is not valid volume metadata: {e.Message}");
            }
            if (spec is null || System.IO.Path.GetFileNameWithoutExtension(file) != spec.Name)
                throw new StorageException($"{file} does not describe a volume named after the file");
            _volumes[spec.Name] = spec;
        }
    }

    private string MetadataPath(string name) => System.IO.Path.Combine(Directory, name + ".json");

    private void ValidateAddress(ushort shelf, byte slot, string name)
    {
        if (shelf == AoeProtocol.BroadcastShelf || slot == AoeProtocol.BroadcastSlot)
            throw new StorageException($"e{shelf}.{slot} is a broadcast address; shelf must be below 65535 and slot below 255");
        if (_volumes.Values.FirstOrDefault(v => v.Shelf == shelf && v.Slot == slot && v.Name != name) is { } other)
            throw new StorageException($"address e{shelf}.{slot} is already used by volume '{other.Name}'", StorageError.Conflict);
    }

    private static void ValidateName(string name)
    {
        if (!NamePattern().IsMatch(name))
            throw new StorageException($"'{name}' is not a volume name: use 1-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit");
    }

    private static void ValidateSize(long sizeBytes)
    {
        if (sizeBytes <= 0 || sizeBytes % AoeProtocol.SectorSize != 0)
            throw new StorageException($"size {sizeBytes} is not a positive multiple of {AoeProtocol.SectorSize} bytes");
        if (sizeBytes / AoeProtocol.SectorSize > 0xFFFF_FFFF_FFFF)
            throw new StorageException($"size {sizeBytes} exceeds what LBA48 can address");
    }

    private void SyncDirectory()
    {
        var fd = Interop.Open(Directory, Interop.ORdOnly | Interop.OCloexec, 0);
        if (fd < 0)
            return; // best effort: the rename itself is atomic; the directory sync only makes it durable sooner
        using var dir = new SafeFileHandle(fd, ownsHandle: true);
        _ = Interop.FDataSync(dir);
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9._-]{0,63}$")]
    private static partial Regex NamePattern();
}
