using BenchmarkDotNet.Attributes;
using XenAoe.Aoe;
using XenAoe.Storage;
using XenAoe.Target;

namespace XenAoe.Benchmarks;

/// <summary>
/// The target's per-frame work without the network: parse, validate, pread/pwrite on a tmpfs-backed volume, build the reply.
/// The goal is 0 bytes allocated per operation.
/// </summary>
[MemoryDiagnoser]
public class FrameHandlingBenchmarks
{
    private static readonly MacAddress Target = MacAddress.Parse("02:00:00:00:00:01");
    private static readonly MacAddress Host = MacAddress.Parse("02:00:00:00:00:0a");
    private readonly LinkInfo _link = new(Target, 9000);
    private string _dir = "";
    private StoragePool _pool = null!;
    private TargetEngine _engine = null!;
    private byte[] _read = [];
    private byte[] _write = [];
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
        _read = Ata(AtaCommands.ReadSectorsExt, 0);
        _write = Ata(AtaCommands.WriteSectorsExt, 17 * 512);
        _config = new byte[60];
        Header(AoeCommand.QueryConfig).Write(_config);
        _replyBuffer = new byte[9014];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
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

    [Benchmark]
    public int QueryConfig() => Handle(_config);

    private int Handle(byte[] frame)
    {
        var sink = new SingleReplySink(_replyBuffer);
        _engine.Handle(frame, _link, ref sink);
        return sink.Length;
    }

    private static AoeHeader Header(AoeCommand command) => new()
    {
        Destination = Target,
        Source = Host,
        Version = AoeProtocol.Version,
        Shelf = 1,
        Slot = 0,
        Command = command,
        Tag = 0x8000_0000,
    };

    private static byte[] Ata(byte command, int dataLength)
    {
        var frame = new byte[AoeProtocol.AtaHeaderLength + dataLength];
        Header(AoeCommand.Ata).Write(frame);
        new AtaHeader
        {
            Flags = AtaFlags.Extended | (dataLength > 0 ? AtaFlags.Write : AtaFlags.None),
            SectorCount = 17,
            CommandOrStatus = command,
            Lba = 1024,
        }.Write(frame);
        return frame;
    }

    private struct SingleReplySink(byte[] buffer) : IReplySink
    {
        public int Length { get; private set; }

        public readonly Span<byte> Next() => buffer;

        public void Commit(int length) => Length = length;

        public void CommitAfterSync(int length, in PendingSync sync)
        {
            sync.Complete(buffer);
            Length = length;
        }
    }
}
