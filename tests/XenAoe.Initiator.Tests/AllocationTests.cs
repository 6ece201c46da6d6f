using XenAoe.Aoe;

namespace XenAoe.Initiator.Tests;

/// <summary>The hot path (submit, send, complete by tag, send the next frame) allocates nothing per frame.</summary>
public sealed class AllocationTests
{
    /// <summary>A port that turns each frame sent into its reply in place, in a fixed ring of buffers: no allocation of its own.</summary>
    private sealed class EchoPort(MacAddress mac, MacAddress target) : AoePort(0, "eth0", mac, 9000)
    {
        private readonly byte[][] _ring = [.. Enumerable.Range(0, 512).Select(_ => new byte[9014])];
        private readonly int[] _lengths = new int[512];
        private int _head;
        private int _tail;

        public override Span<byte> Append() => _ring[_tail % _ring.Length];

        public override void Commit(int length)
        {
            var frame = _ring[_tail % _ring.Length];
            var isRead = frame[27] == AtaCommands.ReadSectorsExt;
            target.Write(frame.AsSpan(6));
            Mac.Write(frame);
            frame[14] |= (byte)AoeFlags.Response;
            frame[27] = AtaStatus.Ready;
            _lengths[_tail % _ring.Length] = isRead ? AoeProtocol.AtaHeaderLength + frame[26] * 512 : AoeProtocol.AtaHeaderLength;
            _tail++;
        }

        public override void Flush()
        {
        }

        public bool TryNext(out ReadOnlySpan<byte> reply)
        {
            if (_head == _tail)
            {
                reply = default;
                return false;
            }
            var slot = _head++ % _ring.Length;
            reply = _ring[slot].AsSpan(0, _lengths[slot]);
            return true;
        }
    }

    [Fact]
    public void Reading_and_writing_megabytes_allocates_nothing_per_frame()
    {
        var time = new FakeTime();
        var device = new AoeDevice(new AoeAddress(1, 0), new AoeInitiatorOptions { Interfaces = ["eth0"], Time = time }, null, 7) { Size = 64 << 20 };
        var targetMac = new MacAddress(0x02_00_00_00_0A_01);
        var port = new EchoPort(new MacAddress(0x02_00_00_00_00_01), targetMac);
        device.AddOrUpdatePath(port, targetMac, 17, 64, time.GetTimestamp(), TimeSpan.FromMilliseconds(1));
        var buffer = new byte[4 << 20];

        void Run(bool write)
        {
            var io = write ? device.WriteAsync(0, buffer) : device.ReadAsync(0, buffer);
            while (port.TryNext(out var reply))
            {
                AoeHeader.TryRead(reply, out var header);
                ulong dirty = 0;
                time.Advance(TimeSpan.FromMicroseconds(20));
                device.OnAtaReply(port, reply, header, time.GetTimestamp(), ref dirty);
            }
            Assert.True(io.IsCompletedSuccessfully);
            io.GetAwaiter().GetResult();
        }

        Run(write: true);
        Run(write: false);
        var before = GC.GetAllocatedBytesForCurrentThread();
        Run(write: true);
        Run(write: false);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        var frames = 2 * (int)Math.Ceiling(buffer.Length / (17.0 * 512));
        Assert.True(allocated == 0, $"{allocated} bytes allocated for {frames} frames");
    }
}
