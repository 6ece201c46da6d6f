using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using XenAoe.Net;
using XenAoe.Target;

namespace XenAoe.Agents.Disk;

/// <summary>The disk server's data plane: one <see cref="NicServer"/> per storage NIC, announcing every target at start and on creation.</summary>
public sealed partial class DiskServer(DiskAdministrator admin, DiskServerOptions options, ILogger<DiskServer> log) : BackgroundService
{
    private readonly List<NicServer> _nics = [];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var engine = admin.Engine ?? throw new InvalidOperationException("the administrator was built without a target engine");
        try
        {
            foreach (var name in options.Interfaces)
            {
                var nic = new NicServer(engine, NetworkInterfaceInfo.Get(name), options.Target);
                _nics.Add(nic);
                nic.Start();
                nic.Announce();
                LogInterface(name, nic.Interface.Mac.ToString(), nic.Interface.Mtu, nic.Link.MaxSectors);
            }
            admin.Exported += Announce;
            foreach (var volume in engine.Volumes)
                LogServing(volume.Spec.Address, volume.Name, volume.Sectors * 512, volume.Spec.WriteCache.ToString(), string.Join(",", options.Interfaces));
            LogReady(engine.Volumes.Count, options.Interfaces.Count);
            await Task.Delay(Timeout.Infinite, stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Normal shutdown.
        }
        finally
        {
            admin.Exported -= Announce;
            foreach (var nic in _nics)
                nic.Dispose();
        }
    }

    private void Announce(ExportedVolume volume)
    {
        LogServing(volume.Spec.Address, volume.Name, volume.Sectors * 512, volume.Spec.WriteCache.ToString(), string.Join(",", options.Interfaces));
        foreach (var nic in _nics)
            nic.Announce([volume]);
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "interface {Name} ({Mac}) MTU {Mtu}: {Sectors} sectors per frame")]
    private partial void LogInterface(string name, string mac, int mtu, int sectors);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "serving {Address} ({Volume}, {Bytes} bytes, {Cache}) on {Interfaces}")]
    private partial void LogServing(string address, string volume, ulong bytes, string cache, string interfaces);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "disk server ready: {Volumes} volumes on {Interfaces} interfaces")]
    private partial void LogReady(int volumes, int interfaces);
}
