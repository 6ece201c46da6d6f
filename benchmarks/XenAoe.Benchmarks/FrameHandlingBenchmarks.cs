using BenchmarkDotNet.Attributes;
using XenAoe.Aoe;
using XenAoe.Storage;
using XenAoe.Target;

namespace XenAoe.Benchmarks;

/// <summary>
/// The target's per-frame work without the network: parse, validate, pread/pwrite on a tmpfs-backed volume, build the reply;
/// for a write-through volume also the group commit (the reply joins a <see cref="CommitGroup"/>, one fdatasync per 32 writes).
/// The goal is 0 bytes allocated per operation.
/// </summary>
[MemoryDiagnoser]
public class FrameHandlingBenchmarks
{
    private const int GroupSize = 32;
    private static readonly MacAddress Target = MacAddress.Parse("02:00:00:00:00:01");
    private static readonly MacAddress Host = MacAddress.Parse("02:00:00:00:00:0a");
    private readonly LinkInfo _link = new(Target, 9000);
    private string _dir = "";
    private StoragePool _pool = null!;
    private TargetEngine _engine = null!;
    private CommitGroup _group = null!;
    private byte[] _read = [];
    private byte[] _write = [];
    private byte[] _writeThrough = [];
    private byte[] _config = [];
    private byte[] _replyBuffer = [];
    private uint _tag;

    [GlobalSetup]
    public void Setup()
    {
        // tmpfs, so the figure is the engine's cost and not the disk's.
        _dir = Path.Combine(Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath(), $"xenaoe-bench-{Environment.ProcessId}");
        _pool = StoragePool.Open(_dir);
        var spec = _pool.Create(new VolumeSpec { Name = "bench", Shelf = 1, Slot = 0, SizeBytes = 64 << 20, WriteCache = WriteCacheMode.WriteBack });
        _engine = new TargetEngine(new TargetOptions(), _pool.Save);
        _engine.Export(spec, _pool.OpenData(spec));
        var durable = _pool.Create(new VolumeSpec { Name = "durable", Shelf = 1, Slot = 1, SizeBytes = 64 << 20 });
        _engine.Export(durable, _pool.OpenData(durable));
        _group = new CommitGroup(GroupSize, _engine.Counters);
        _read = Ata(AtaCommands.ReadSectorsExt, 0);
        _write = Ata(AtaCommands.WriteSectorsExt, 17 * 512);
        _writeThrough = Ata(AtaCommands.WriteSectorsExt, 17 * 512, slot: 1);
        _config = new byte[60];
        Header(AoeCommand.QueryConfig).Write(_config);
        _replyBuffer = new byte[9014];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _group.Dispose();
        foreach (var v in _engine.Volumes)
            v.Store.Dispose();
        _pool.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Benchmark]
    public int Read8K() => Handle(_read);

    [Benchmark]
    public int Write8K()
    {
        // A fresh tag per write, as initiators do, so the reply cache treats each as new.
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(_write.AsSpan(20), 0x8000_0000 | ++_tag);
        return Handle(_write);
    }

    /// <summary>Per write: a group of 32 write-through writes, then its one fdatasync (cheap on tmpfs) and the group's reset.</summary>
    [Benchmark(OperationsPerInvoke = GroupSize)]
    public int WriteThrough8KGroupOf32()
    {
        for (var i = 0; i < GroupSize; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(_writeThrough.AsSpan(20), 0x8000_0000 | ++_tag);
            Handle(_writeThrough);
        }
        _group.Complete();
        var count = _group.Count;
        _group.Clear();
        return count;
    }

    [Benchmark]
    public int QueryConfig() => Handle(_config);

    private int Handle(byte[] frame)
    {
        var sink = new BenchSink(_replyBuffer, _group);
        _engine.Handle(frame, _link, ref sink);
        return sink.Length;
    }

    private static AoeHeader Header(AoeCommand command, byte slot = 0) => new()
    {
        Destination = Target,
        Source = Host,
        Version = AoeProtocol.Version,
        Shelf = 1,
        Slot = slot,
        Command = command,
        Tag = 0x8000_0000,
    };

    private static byte[] Ata(byte command, int dataLength, byte slot = 0)
    {
        var frame = new byte[AoeProtocol.AtaHeaderLength + dataLength];
        Header(AoeCommand.Ata, slot).Write(frame);
        new AtaHeader
        {
            Flags = AtaFlags.Extended | (dataLength > 0 ? AtaFlags.Write : AtaFlags.None),
            SectorCount = 17,
            CommandOrStatus = command,
            Lba = 1024,
        }.Write(frame);
        return frame;
    }

    /// <summary>One reply buffer; a reply that waits for a sync joins the group, as on the NIC server's hot path.</summary>
    private struct BenchSink(byte[] buffer, CommitGroup group) : IReplySink
    {
        public int Length { get; private set; }

        public readonly Span<byte> Next() => buffer;

        public void Commit(int length) => Length = length;

        public void CommitAfterSync(int length, in PendingSync sync)
        {
            group.Add(buffer.AsSpan(0, length), sync);
            Length = length;
        }
    }
}
