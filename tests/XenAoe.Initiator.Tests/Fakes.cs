using XenAoe.Aoe;

namespace XenAoe.Initiator.Tests;

/// <summary>A clock that moves only when told; one tick is 100 ns.</summary>
internal sealed class FakeTime : TimeProvider
{
    private long _now = 1_000_000_000;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => Interlocked.Read(ref _now);

    public override DateTimeOffset GetUtcNow() => new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddTicks(GetTimestamp());

    public void Advance(TimeSpan by) => Interlocked.Add(ref _now, by.Ticks);
}

/// <summary>A port that records the frames the engine sends instead of putting them on a wire.</summary>
internal sealed class FakePort(int index, string name, MacAddress mac, int mtu) : AoePort(index, name, mac, mtu)
{
    private readonly byte[] _buffer = new byte[mtu + 14];

    public List<byte[]> Sent { get; } = [];

    public override Span<byte> Append() => _buffer;

    public override void Commit(int length) => Sent.Add(_buffer.AsSpan(0, length).ToArray());

    public override void Flush()
    {
    }

    /// <summary>Takes the frames sent so far.</summary>
    public List<byte[]> Take()
    {
        var frames = new List<byte[]>(Sent);
        Sent.Clear();
        return frames;
    }
}

/// <summary>Builds target replies to request frames.</summary>
internal static class Replies
{
    /// <summary>A successful ATA reply; reads carry <paramref name="data"/> (or a pattern from the LBA).</summary>
    public static byte[] Ata(byte[] request, byte status = AtaStatus.Ready, byte error = 0, byte[]? data = null)
    {
        Assert.True(AtaHeader.TryRead(request, out var ata));
        var isRead = ata.CommandOrStatus == AtaCommands.ReadSectorsExt;
        var payload = status == AtaStatus.Ready ? data ?? (isRead ? Pattern(ata.Lba, ata.SectorCount) : []) : [];
        var reply = new byte[Math.Max(60, AoeProtocol.AtaHeaderLength + payload.Length)];
        AoeHeader.TryRead(request, out var header);
        AoeHeader.WriteResponse(reply, request, header.Destination, header.Shelf, header.Slot, AoeError.None);
        request.AsSpan(24, 12).CopyTo(reply.AsSpan(24));
        reply[25] = error;
        reply[27] = status;
        payload.CopyTo(reply, AoeProtocol.AtaHeaderLength);
        return reply;
    }

    /// <summary>An AoE error reply (Error flag and code).</summary>
    public static byte[] Refusal(byte[] request, AoeError error)
    {
        var reply = new byte[60];
        AoeHeader.TryRead(request, out var header);
        AoeHeader.WriteResponse(reply, request, header.Destination, header.Shelf, header.Slot, error);
        request.AsSpan(24, 12).CopyTo(reply.AsSpan(24));
        return reply;
    }

    public static byte[] Config(byte[] request, byte sectors, ushort buffers, byte[]? configString = null)
    {
        configString ??= [];
        var reply = new byte[Math.Max(60, AoeProtocol.ConfigHeaderLength + configString.Length)];
        AoeHeader.TryRead(request, out var header);
        AoeHeader.WriteResponse(reply, request, header.Destination, header.Shelf, header.Slot, AoeError.None);
        new ConfigHeader { BufferCount = buffers, SectorCount = sectors, AoeVersion = 1, StringLength = (ushort)configString.Length }.Write(reply);
        configString.CopyTo(reply, AoeProtocol.ConfigHeaderLength);
        return reply;
    }

    /// <summary>Every byte of sector n is (n * 7 + byte index) mod 251.</summary>
    public static byte[] Pattern(ulong lba, int sectors)
    {
        var data = new byte[sectors * AoeProtocol.SectorSize];
        for (var s = 0; s < sectors; s++)
        {
            for (var i = 0; i < AoeProtocol.SectorSize; i++)
                data[s * AoeProtocol.SectorSize + i] = (byte)(((lba + (ulong)s) * 7 + (ulong)i) % 251);
        }
        return data;
    }
}
