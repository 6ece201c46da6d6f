using System.CommandLine;
using System.Text.Json;
using XenAoe.Agents;
using XenAoe.Agents.Configuration;
using XenAoe.Control;
using XenAoe.Control.Api;
using XenAoe.Lab.Cluster;

namespace XenAoe.Cli;

/// <summary>
/// How a command reaches the controller: <c>--controller URL</c> (repeat for standbys) and <c>--token</c>, else
/// <c>$XENAOE_CONTROLLER</c> and <c>$XENAOE_TOKEN</c>, else the lab's controllers (reached inside its admin namespace), else the
/// controller of this machine (the <c>listen</c> and <c>token_file</c> of <c>/etc/xenaoe/controller.conf</c>).
/// </summary>
internal static class ControllerConnection
{
    public static readonly Option<string[]> Urls = new("--controller") { Description = "Controller URL (repeat for standbys); default $XENAOE_CONTROLLER, else the lab's, else this machine's" };
    public static readonly Option<string> Token = new("--token") { Description = "API token; default $XENAOE_TOKEN, else the lab controller's token file, else this machine's controller's" };

    public static bool LabHasController(string labState) => File.Exists(LabControllers.FileIn(labState));

    public static ControllerClient Open(ParseResult parse, TimeSpan? timeout = null)
    {
        var urls = parse.GetValue(Urls) is { Length: > 0 } given ? given
            : Environment.GetEnvironmentVariable("XENAOE_CONTROLLER") is { Length: > 0 } env ? env.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            : null;
        var token = parse.GetValue(Token) ?? Environment.GetEnvironmentVariable("XENAOE_TOKEN");
        if (urls is not null)
            return new ControllerClient(urls, token ?? throw new ArgumentException("give the API token (--token or $XENAOE_TOKEN)"), timeout);
        if (!LabHasController(HostDirectory.DefaultLabState) && OpenLocal(timeout, token) is { } local)
            return local;
        return OpenLab(HostDirectory.DefaultLabState, timeout, token);
    }

    /// <summary>The controller this machine runs, as its configuration says; null when its token file is not here.</summary>
    private static ControllerClient? OpenLocal(TimeSpan? timeout, string? token)
    {
        var options = ControllerOptions.From(DaemonSettings.Load(ControllerOptions.Schema, file: null, new Dictionary<string, string?>()));
        if (token is null && !File.Exists(options.TokenFile))
            return null;
        return new ControllerClient([.. options.Listen.Select(l => $"http://{l}")], token ?? ApiToken.Read(options.TokenFile), timeout);
    }

    /// <summary>The controllers of the lab recorded in <paramref name="labState"/>, reached inside its admin namespace.</summary>
    public static ControllerClient OpenLab(string labState, TimeSpan? timeout = null, string? token = null)
    {
        var file = LabControllers.FileIn(labState);
        if (!File.Exists(file))
            throw new ArgumentException("no controller to talk to: give --controller URL and --token, set $XENAOE_CONTROLLER and $XENAOE_TOKEN, run it on the controller (as root), or start the lab (`xenaoe lab up`)");
        var lab = JsonSerializer.Deserialize(File.ReadAllText(file), LabControllersJsonContext.Default.LabControllers)
            ?? throw new InvalidDataException($"{file} is empty");
        return new ControllerClient(lab.Urls, token ?? File.ReadAllText(lab.TokenFile).Trim(), timeout, lab.Namespace);
    }
}
