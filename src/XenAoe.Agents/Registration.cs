using System.Net;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using XenAoe.Agents.Configuration;

namespace XenAoe.Agents;

/// <summary>A CPU server registering itself; the controller then reads its resources from <paramref name="ApiUrl"/>.</summary>
/// <param name="ApiUrl">The host daemon's management URL, e.g. <c>http://10.77.0.21:7300</c>.</param>
/// <param name="Labels">Failure domains and the like, e.g. <c>switch=a</c>, <c>power=1</c>.</param>
public sealed record RegisterHostRequest(string Name, string ApiUrl, Dictionary<string, string>? Labels = null);

/// <param name="Shelf">The AoE shelf of the server's volumes (unique per disk server); null: the controller keeps the one it
/// has, or gives a new server the lowest free shelf.</param>
public sealed record RegisterDiskServerRequest(string Name, string ApiUrl, ushort? Shelf = null, Dictionary<string, string>? Labels = null);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(RegisterHostRequest))]
[JsonSerializable(typeof(RegisterDiskServerRequest))]
[JsonSerializable(typeof(Dictionary<string, string>))]
public sealed partial class RegistrationJsonContext : JsonSerializerContext;

/// <summary>
/// Where a daemon registers itself: the keys <c>controllers</c> and <c>labels</c> of <c>disk.conf</c> and <c>host.conf</c>, which
/// <c>xenaoe join</c> writes. A daemon with controllers registers at every start, so a restarted or re-addressed machine
/// updates its record.
/// </summary>
public sealed partial record ControllerRegistration(IReadOnlyList<string> Controllers, Dictionary<string, string> Labels)
{
    public static readonly ConfigKey[] Keys =
    [
        new("controllers", "", "Controller URLs (standbys too), e.g. http://10.0.0.1:7400: the daemon registers itself there at every start, with its listen address and token_file's token. Written by `xenaoe join`; unset: no registration.", Multiple: true),
        new("labels", "", "key=value labels of the machine's failure domains (e.g. power=circuit1 switch=a): the scheduler puts a disk's two legs in different ones.", Multiple: true),
    ];

    /// <summary>Null when no controller is configured. Registration needs a specific listen address (the URL the controller calls back) and the token.</summary>
    /// <exception cref="ConfigException">A URL or label is malformed, or listen or token_file is missing.</exception>
    public static ControllerRegistration? From(DaemonSettings settings, IPEndPoint? listen, string? tokenFile)
    {
        var labels = ParseLabels(settings, "labels");
        var controllers = settings.List("controllers");
        if (controllers.Count == 0)
            return null;
        foreach (var url in controllers)
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp)
                throw settings.Error("controllers", $"'{url}' is not an http:// URL such as http://10.0.0.1:7400");
        }
        if (listen is null || tokenFile is null)
            throw settings.Error("controllers", "needs listen and token_file: the controller calls the daemon back at its listen address, with the cluster's token");
        if (listen.Address.Equals(IPAddress.Any) || listen.Address.Equals(IPAddress.IPv6Any))
            throw settings.Error("listen", "needs the management address itself (the controller registers it), not a wildcard");
        return new ControllerRegistration(controllers, labels);
    }

    /// <summary>Runs a <see cref="ControllerRegistrar{TRequest}"/> in the daemon: <paramref name="request"/> posted to <paramref name="path"/>.</summary>
    public void AddRegistrar<TRequest>(IServiceCollection services, string token, string path, TRequest request, JsonTypeInfo<TRequest> type) =>
        services.AddHostedService(sp => new ControllerRegistrar<TRequest>(this, token, path, request, type,
            sp.GetRequiredService<IHostApplicationLifetime>(), sp.GetRequiredService<ILogger<ControllerRegistrar<TRequest>>>()));

    /// <summary>key=value pairs; keys as the scheduler's label names: lower case, digits, '.', '_', '-'.</summary>
    public static Dictionary<string, string> ParseLabels(DaemonSettings settings, string key)
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in settings.List(key))
        {
            if (pair.Split('=', 2) is not [var name, var value] || !LabelName().IsMatch(name) || value.Length == 0)
                throw settings.Error(key, $"'{pair}' is not a label such as power=circuit1 (name: a-z, 0-9, '.', '_', '-')");
            labels[name] = value;
        }
        return labels;
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9._-]{0,62}$")]
    private static partial Regex LabelName();
}

/// <summary>
/// Registers the daemon with the controller once its API listens (the controller calls it back at once), and keeps trying,
/// backing off to <see cref="MaxPause"/>, until one controller accepts: a controller that is down or still starting is
/// waited for, a refusal (a name taken by another shelf, a wrong token) is logged with the controller's reason and tried again.
/// </summary>
public sealed partial class ControllerRegistrar<TRequest>(ControllerRegistration registration, string token, string path, TRequest request,
    JsonTypeInfo<TRequest> type, IHostApplicationLifetime lifetime, ILogger log) : BackgroundService
{
    public static readonly TimeSpan MaxPause = TimeSpan.FromSeconds(30);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var started = new TaskCompletionSource();
        using (lifetime.ApplicationStarted.Register(started.SetResult))
            await started.Task.WaitAsync(stoppingToken).ConfigureAwait(false);
        var pause = TimeSpan.FromSeconds(1);
        while (true)
        {
            foreach (var url in registration.Controllers)
            {
                using var client = new JsonApiClient(url, TimeSpan.FromSeconds(30), token, "the controller", r => new HttpRequestException(r.Message, null, (HttpStatusCode)r.Status));
                try
                {
                    await client.SendAsync(HttpMethod.Post, path, request, type, idempotent: true, stoppingToken).ConfigureAwait(false);
                    Log.Registered(log, url);
                    return;
                }
                catch (Exception e) when (e is HttpRequestException or TimeoutException or InvalidDataException)
                {
                    Log.NotRegistered(log, url, e.Message, pause.TotalSeconds);
                }
            }
            await Task.Delay(pause, stoppingToken).ConfigureAwait(false);
            pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, MaxPause.Ticks));
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "registered with the controller at {Url}")]
        public static partial void Registered(ILogger logger, string url);

        [LoggerMessage(2, LogLevel.Warning, "not registered with the controller at {Url}: {Reason}; trying again in {Seconds} s")]
        public static partial void NotRegistered(ILogger logger, string url, string reason, double seconds);
    }
}
