using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using XenAoe.Agents;
using XenAoe.Control.Api;
using XenAoe.Control.Health;
using XenAoe.Control.Jobs;
using XenAoe.Control.Store;
using XenAoe.Control.Web;

namespace XenAoe.Control;

/// <summary>
/// Runs a controller: the REST API (and the dashboard) on every controller, and, on the one that wins the leader election,
/// the job runner, the heartbeat monitor and the job history's pruning. When leadership is lost (etcd lease expired, store unreachable) both stop and
/// the controller campaigns again; jobs in flight are resumed by whoever leads next.
/// </summary>
public static partial class ControllerDaemon
{
    /// <summary>Printed once the API listens: scripts and tests wait for it.</summary>
    public const string ReadyLine = "controller ready";

    public static async Task RunAsync(ControllerOptions options, CancellationToken ct = default)
    {
        options.Validate();
        var storeOptions = StateStoreOptions.Parse(options.Store);
        var token = ApiToken.ReadOrCreate(options.TokenFile);
        using var agents = new HttpAgents(token);
        await using var store = storeOptions.CreateStore();
        await using var election = storeOptions.CreateLeaderElection(store);
        var state = new ControllerState(store);
        var placement = new Placement(state);
        var jobs = new JobServices(state, placement, agents).Jobs();

        var builder = DaemonBuilder.Create();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = options.MaxRequestBytes;
            foreach (var endpoint in options.Listen)
                k.Listen(endpoint);
        });
        builder.Services.Configure<JsonOptions>(o => o.SerializerOptions.TypeInfoResolverChain.Insert(0, ApiJsonContext.Default));
        builder.Services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        builder.Services.AddOpenApi();

        await using var app = builder.Build();
        var log = app.Services.GetRequiredService<ILoggerFactory>();
        ControllerApi.UseErrorsAndAuthentication(app, token);
        app.MapOpenApi();
        Dashboard.Map(app);
        ControllerApi.Map(app, state, placement, agents, token, async () =>
            new ControllerHealth(options.Name, election.IsLeader, await LeaderAsync(election), storeOptions.Kind.ToString().ToLowerInvariant()));
        await app.StartAsync(ct).ConfigureAwait(false);
        Console.WriteLine($"{ReadyLine}: {options.Name}, API on {string.Join(", ", options.Listen.Select(l => $"http://{l}"))}, store {options.Store}");

        var daemonLog = log.CreateLogger("XenAoe.Control.ControllerDaemon");
        try
        {
            while (!ct.IsCancellationRequested)
            {
                await election.CampaignAsync(options.Name, ct).ConfigureAwait(false);
                Log.Leading(daemonLog, options.Name);
                using var leading = CancellationTokenSource.CreateLinkedTokenSource(ct, election.LeadershipLost);
                var runner = new JobRunner(state, jobs, options.Name, log.CreateLogger<JobRunner>());
                var monitor = new HostMonitor(state, options, agents, log.CreateLogger<HostMonitor>());
                var retention = new JobRetention(state, options, log.CreateLogger<JobRetention>());
                await Task.WhenAll(runner.RunAsync(leading.Token), monitor.RunAsync(leading.Token), retention.RunAsync(leading.Token)).ConfigureAwait(false);
                if (!ct.IsCancellationRequested)
                    Log.LeadershipLost(daemonLog, options.Name);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Stopping.
        }
        finally
        {
            await election.ResignAsync(CancellationToken.None).ConfigureAwait(false);
            await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    private static async Task<string?> LeaderAsync(ILeaderElection election)
    {
        try
        {
            return await election.GetLeaderAsync().ConfigureAwait(false);
        }
        catch (StoreUnavailableException)
        {
            return null;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "{Name} leads: running jobs and heartbeats")]
        public static partial void Leading(ILogger logger, string name);

        [LoggerMessage(2, LogLevel.Warning, "{Name} lost the leadership: campaigning again")]
        public static partial void LeadershipLost(ILogger logger, string name);
    }
}
