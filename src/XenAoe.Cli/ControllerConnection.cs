using System.CommandLine;
using System.Text.Json;
using XenAoe.Control.Api;
using XenAoe.Lab.Cluster;

namespace XenAoe.Cli;

/// <summary>
/// How a command reaches the controller: <c>--controller URL</c> (repeat for standbys) and <c>--token</c>, else
/// <c>$XENAOE_CONTROLLER</c> and <c>$XENAOE_TOKEN</c>, else the lab's controllers (reached inside its admin namespace).
/// </summary>
internal static class ControllerConnection
{
    public static readonly Option<string[]> Urls = new("--controller") { Description = "Controller URL (repeat for standbys); default $XENAOE_CONTROLLER, else the lab's" };
    public static readonly Option<string> Token = new("--token") { Description = "API token; default $XENAOE_TOKEN, else the lab controller's token file" };

    public static bool LabHasController(string labState) => File.Exists(LabControllers.FileIn(labState));

    public static ControllerClient Open(ParseResult parse, TimeSpan? timeout = null)
    {
        var urls = parse.GetValue(Urls) is { Length: > 0 } given ? given
            : Environment.GetEnvironmentVariable("XENAOE_CONTROLLER") is { Length: > 0 } env ? env.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            : null;
        var token = parse.GetValue(Token) ?? Environment.GetEnvironmentVariable("XENAOE_TOKEN");
        if (urls is not null)
            return new ControllerClient(urls, token ?? throw new ArgumentException("give the API token (--token or $XENAOE_TOKEN)"), timeout);
        return OpenLab(HostDirectory.DefaultLabState, timeout, token);
    }

    /// <summary>The controllers of the lab recorded in <paramref name="labState"/>, reached inside its admin namespace.</summary>
    public static ControllerClient OpenLab(string labState, TimeSpan? timeout = null, string? token = null)
    {
        var file = LabControllers.FileIn(labState);
        if (!File.Exists(file))
            throw new ArgumentException("no controller to talk to: give --controller URL and --token, set $XENAOE_CONTROLLER and $XENAOE_TOKEN, or start the lab (`xenaoe lab up`)");
        var lab = JsonSerializer.Deserialize(File.ReadAllText(file), LabControllersJsonContext.Default.LabControllers)
            ?? throw new InvalidDataException($"{file} is empty");
        return new ControllerClient(lab.Urls, token ?? File.ReadAllText(lab.TokenFile).Trim(), timeout, lab.Namespace);
    }
}
