using XenAoe.Agents.Configuration;
using XenAoe.Agents.Host;
using XenAoe.Control;
using XenAoe.Mirror;
using XenAoe.Storage;

namespace XenAoe.Cli;

/// <summary>How every command ends: refusals the user can act on become one line on stderr and exit code 1; bugs still crash loudly.</summary>
internal static class CommandErrors
{
    public static async Task<int> Guard(Func<Task> body)
    {
        try
        {
            await body();
            return 0;
        }
        catch (Exception e) when (e is StorageException or MirrorAssemblyException or ArgumentException or FormatException or IOException
            or TimeoutException or UnauthorizedAccessException or HostException or HttpRequestException or ControlException or ConfigException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }
}
