using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;

namespace XenAoe.Agents;

/// <summary>How every XenAoE daemon (disk, host, controller) starts its web host: one console line per log entry, with the time.</summary>
public static class DaemonBuilder
{
    public static WebApplicationBuilder Create()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        // ASP.NET Core's own information lines (each request, each start phase) drown the daemon's.
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        return builder;
    }
}
