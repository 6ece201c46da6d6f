using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace XenAoe.Agents;

/// <summary>
/// How every XenAoE daemon (disk, host, controller) starts its web host: one console line per log entry, with the time; under
/// systemd, <c>Type=notify</c> readiness (READY=1 once every hosted service has started) and journald's priority prefixes.
/// </summary>
public static class DaemonBuilder
{
    public static WebApplicationBuilder Create()
    {
        // No appsettings.json reloading: the default watches the working directory and everything below it with inotify, so a
        // disk server started inside (or above) its pool woke a thread on every write to a volume (20,000 times a second under
        // load), and one started from / would first put a watch on every directory of the machine. Daemons take their settings
        // from DaemonSettings (file, environment, flags), read and checked before the host is built.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        // ASP.NET Core's own information lines (each request, each start phase) drown the daemon's.
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        // A no-op unless systemd started the process; after the console logger so its journald format wins there.
        builder.Services.AddSystemd();
        return builder;
    }
}
