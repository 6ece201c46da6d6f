using System.Text.Json;
using System.Text.Json.Serialization;

namespace XenAoe.Lab.Cluster;

/// <summary>Whether a recorded thing is only intended (about to be made: it may or may not exist) or confirmed made.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<LabEntryState>))]
public enum LabEntryState
{
    Intended,
    Created,
}

/// <summary>
/// The lab as recorded in state.json. Everything is recorded as <see cref="LabEntryState.Intended"/> before it is made and
/// marked <see cref="LabEntryState.Created"/> after, so <c>down</c> finds it after a crash at any point. Not thread-safe:
/// change it only through <see cref="LabStateFile"/>.
/// </summary>
public sealed class LabState
{
    public const int CurrentVersion = 1;

    public int Version { get; set; } = CurrentVersion;

    public string Prefix { get; set; } = LabPlan.DefaultPrefix;

    /// <summary>"building" while <c>up</c> runs, "up" once it finished.</summary>
    public string Phase { get; set; } = "building";

    public DateTimeOffset CreatedAt { get; set; }

    public int DiskServers { get; set; }

    public int CpuServers { get; set; }

    public int StorageMtu { get; set; }

    public string ManagementSubnet { get; set; } = "";

    public string VmSubnet { get; set; } = "";

    public string StorageSubnet0 { get; set; } = "";

    public string StorageSubnet1 { get; set; } = "";

    public List<LabNamespaceEntry> Namespaces { get; set; } = [];

    public List<LabLinkEntry> Links { get; set; } = [];

    public List<LabTapEntry> Taps { get; set; } = [];

    public List<LabProcessEntry> Processes { get; set; } = [];

    internal static LabState For(LabPlan plan) => new()
    {
        Prefix = plan.Prefix,
        CreatedAt = DateTimeOffset.UtcNow,
        DiskServers = plan.DiskServers,
        CpuServers = plan.CpuServers,
        StorageMtu = plan.StorageMtu,
        ManagementSubnet = plan.ManagementSubnet.ToString(),
        VmSubnet = plan.VmSubnet.ToString(),
        StorageSubnet0 = plan.StorageSubnet0.ToString(),
        StorageSubnet1 = plan.StorageSubnet1.ToString(),
    };

    /// <summary>The plan this lab was built from, in <paramref name="stateDirectory"/>.</summary>
    public LabPlan ToPlan(string stateDirectory) => new()
    {
        Prefix = Prefix,
        StateDirectory = stateDirectory,
        DiskServers = DiskServers,
        CpuServers = CpuServers,
        StorageMtu = StorageMtu,
        ManagementSubnet = System.Net.IPNetwork.Parse(ManagementSubnet),
        VmSubnet = System.Net.IPNetwork.Parse(VmSubnet),
        StorageSubnet0 = System.Net.IPNetwork.Parse(StorageSubnet0),
        StorageSubnet1 = System.Net.IPNetwork.Parse(StorageSubnet1),
    };
}

public sealed class LabNamespaceEntry
{
    public string Name { get; set; } = "";

    public LabEntryState State { get; set; }
}

/// <summary>A bridge or a veth pair (<see cref="PeerNamespace"/>/<see cref="PeerName"/> set) made by the lab.</summary>
public sealed class LabLinkEntry
{
    public string Namespace { get; set; } = "";

    public string Name { get; set; } = "";

    /// <summary>"bridge" or "veth".</summary>
    public string Kind { get; set; } = "";

    public string? PeerNamespace { get; set; }

    public string? PeerName { get; set; }

    public int Mtu { get; set; }

    public LabEntryState State { get; set; }
}

public sealed class LabTapEntry
{
    public string Namespace { get; set; } = "";

    public string Name { get; set; } = "";

    public LabEntryState State { get; set; }
}

/// <summary>
/// A daemon started by <see cref="LabProcesses"/>. <see cref="Pid"/> and <see cref="StartTime"/> are null while only intended;
/// <see cref="StartTime"/> is field 22 of /proc/PID/stat (clock ticks since boot), so a pid reused by another process is told apart.
/// </summary>
public sealed class LabProcessEntry
{
    public string Name { get; set; } = "";

    public string Namespace { get; set; } = "";

    public string File { get; set; } = "";

    public List<string> Args { get; set; } = [];

    public string LogFile { get; set; } = "";

    public int? Pid { get; set; }

    public ulong? StartTime { get; set; }

    public DateTimeOffset? StartedAt { get; set; }

    public LabEntryState State { get; set; }
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(LabState))]
internal sealed partial class LabStateJsonContext : JsonSerializerContext;

/// <summary>
/// state.json in a state directory, and the lock that serializes changes to it across processes (state.lock, flock'ed
/// through <see cref="FileShare.None"/>). Writes are atomic: a temp file is written and fsync'ed, renamed over state.json,
/// and the directory is fsync'ed, so a crash leaves either the old or the new record, never a torn one.
/// </summary>
public sealed class LabStateFile : IAsyncDisposable
{
    public const string FileName = "state.json";
    private const string LockName = "state.lock";
    private static readonly TimeSpan s_lockTimeout = TimeSpan.FromSeconds(30);

    private readonly FileStream? _lock;

    private LabStateFile(string directory, FileStream? lockStream, LabState? state)
    {
        Directory = directory;
        _lock = lockStream;
        State = state;
    }

    public string Directory { get; }

    public string Path => System.IO.Path.Combine(Directory, FileName);

    /// <summary>The record; null when there is none. Change it, then <see cref="SaveAsync"/>.</summary>
    public LabState? State { get; set; }

    /// <summary>Reads state.json without taking the lock (for status); null when there is none.</summary>
    public static LabState? Read(string directory)
    {
        var path = System.IO.Path.Combine(directory, FileName);
        if (!File.Exists(path))
            return null;
        var text = File.ReadAllBytes(path);
        try
        {
            return JsonSerializer.Deserialize(text, LabStateJsonContext.Default.LabState)
                ?? throw new InvalidDataException($"{path} holds no lab state.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a lab state record: {e.Message}", e);
        }
    }

    /// <summary>
    /// Takes the state lock of <paramref name="directory"/>, waiting up to 30 s for another lab command to finish, and reads
    /// the record. Dispose to release the lock. A missing directory is created when <paramref name="createDirectory"/>;
    /// otherwise the result has no record and takes no lock (nothing is there to guard).
    /// </summary>
    public static async Task<LabStateFile> OpenAsync(string directory, bool createDirectory, CancellationToken ct = default)
    {
        if (!createDirectory && !System.IO.Directory.Exists(directory))
            return new LabStateFile(directory, null, null);
        System.IO.Directory.CreateDirectory(directory);
        var lockPath = System.IO.Path.Combine(directory, LockName);
        var deadline = DateTime.UtcNow + s_lockTimeout;
        while (true)
        {
            try
            {
                var stream = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                try
                {
                    return new LabStateFile(directory, stream, Read(directory));
                }
                catch
                {
                    await stream.DisposeAsync().ConfigureAwait(false);
                    throw;
                }
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                // Another lab command holds the lock: wait for it.
                await Task.Delay(TimeSpan.FromMilliseconds(100), ct).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw new IOException($"Another lab command holds {lockPath} for more than {s_lockTimeout.TotalSeconds} s: {e.Message}", e);
            }
        }
    }

    /// <summary>Writes <see cref="State"/> atomically (temp file, fsync, rename, directory fsync).</summary>
    public async Task SaveAsync(CancellationToken ct = default)
    {
        var state = State ?? throw new InvalidOperationException("There is no lab state to save.");
        var temp = Path + ".tmp";
        var bytes = JsonSerializer.SerializeToUtf8Bytes(state, LabStateJsonContext.Default.LabState);
        await using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            await stream.WriteAsync(bytes, ct).ConfigureAwait(false);
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, Path, overwrite: true);
        SyncDirectory();
    }

    /// <summary>Removes state.json (the logs stay, for reading after the lab is gone).</summary>
    public void Delete()
    {
        if (!System.IO.Directory.Exists(Directory))
            return;
        File.Delete(Path + ".tmp");
        File.Delete(Path);
        SyncDirectory();
        State = null;
    }

    public ValueTask DisposeAsync() => _lock?.DisposeAsync() ?? ValueTask.CompletedTask;

    // The rename is durable only once the directory entry is.
    private void SyncDirectory() => DirectorySync.Sync(Directory);
}
