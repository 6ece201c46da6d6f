using System.Collections.Concurrent;
using XenAoe.Block;

namespace XenAoe.Nbd;

/// <summary>A named device the server offers, with the connections that opened it (so removing it can disconnect them).</summary>
internal sealed class NbdExport(string name, IBlockDevice device, string? description)
{
    private readonly ConcurrentDictionary<NbdConnection, byte> _connections = new();
    private volatile bool _removed;

    public string Name { get; } = name;
    public IBlockDevice Device { get; } = device;
    public string? Description { get; } = description;

    /// <summary>
    /// Transmission flags. CAN_MULTI_CONN is safe because every connection to an export shares one <see cref="IBlockDevice"/>,
    /// whose FlushAsync makes every completed write durable, whichever connection sent it (the contract the flag asks for).
    /// </summary>
    public ushort TransmissionFlags => Device.ReadOnly
        ? (ushort)(NbdProtocol.FlagHasFlags | NbdProtocol.FlagReadOnly | NbdProtocol.FlagSendFlush | NbdProtocol.FlagCanMultiConn)
        : (ushort)(NbdProtocol.FlagHasFlags | NbdProtocol.FlagSendFlush | NbdProtocol.FlagSendFua | NbdProtocol.FlagSendTrim
            | NbdProtocol.FlagSendWriteZeroes | NbdProtocol.FlagCanMultiConn);

    public ICollection<NbdConnection> Connections => _connections.Keys;

    /// <summary>Records a connection entering transmission; false when the export was removed meanwhile.</summary>
    public bool Attach(NbdConnection connection)
    {
        _connections.TryAdd(connection, 0);
        if (!_removed)
            return true;
        _connections.TryRemove(connection, out _);
        return false;
    }

    public void Detach(NbdConnection connection) => _connections.TryRemove(connection, out _);

    /// <summary>Marks the export removed and aborts its connections; returns them so the caller can wait for them.</summary>
    public NbdConnection[] Remove()
    {
        _removed = true;
        var connections = _connections.Keys.ToArray();
        foreach (var connection in connections)
            connection.Abort("its export was removed");
        return connections;
    }
}
