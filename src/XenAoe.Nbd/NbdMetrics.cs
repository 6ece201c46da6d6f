using System.Diagnostics.Metrics;

namespace XenAoe.Nbd;

/// <summary>What the NBD servers of this process saw, counted on the "XenAoe.Nbd" meter (never logged per request).</summary>
internal static class NbdMetrics
{
    public static readonly Meter Meter = new("XenAoe.Nbd");
    public static readonly Counter<long> Connections = Meter.CreateCounter<long>("xenaoe.nbd.connections");
    public static readonly Counter<long> RefusedConnections = Meter.CreateCounter<long>("xenaoe.nbd.refused_connections");
    public static readonly Counter<long> ProtocolErrors = Meter.CreateCounter<long>("xenaoe.nbd.protocol_errors");
    public static readonly Counter<long> Requests = Meter.CreateCounter<long>("xenaoe.nbd.requests");
    public static readonly Counter<long> RequestErrors = Meter.CreateCounter<long>("xenaoe.nbd.request_errors");
    public static readonly Counter<long> BytesRead = Meter.CreateCounter<long>("xenaoe.nbd.bytes_read", "By");
    public static readonly Counter<long> BytesWritten = Meter.CreateCounter<long>("xenaoe.nbd.bytes_written", "By");
}
