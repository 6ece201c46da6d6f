using System.Net;
using XenAoe.Agents.Configuration;
using XenAoe.Control.Store;

namespace XenAoe.Control;

/// <summary>How a controller runs. <see cref="Validate"/> is called at start.</summary>
public sealed class ControllerOptions
{
    /// <summary>The keys of <c>/etc/xenaoe/controller.conf</c> (and of <c>xenaoe controller serve</c>'s flags).</summary>
    public static readonly ConfigSchema Schema = new("controller",
    [
        new("name", "the machine's host name", "This controller's name: its candidate id when several share an etcd store, and the owner of the jobs it runs."),
        new("store", "sqlite:/var/lib/xenaoe/controller/state.db", "sqlite:PATH (one controller) or etcd:URL,URL,URL[;prefix=/xenaoe/][;ttl=5] (several controllers, one leads). The database is never deleted by the package."),
        new("listen", "127.0.0.1:7400", "Address:port list of the REST API and dashboard (the management address, so CPU and disk servers and the CLI reach it).", Multiple: true),
        new("token_file", "/var/lib/xenaoe/controller/token", "The cluster's API token file (created with a random token if missing)."),
        new("heartbeat_interval", "0.5", "Seconds (0.05-60) between the leader's status requests to every CPU and disk server."),
        new("heartbeat_timeout", "1", "Seconds (0.05-60) a status request may take before it counts as unanswered."),
        new("dead_after", "5", "Seconds (0.1-3600, at least two heartbeats) without a heartbeat before a CPU server is declared dead, fenced at the storage and its VMs restarted elsewhere."),
        new("keep_jobs", "1000", "Finished jobs kept in the history (0-1000000, the newest); older ones are pruned."),
        new("keep_jobs_days", "30", "Days (0-3650) a finished job is kept at most."),
    ]);

    /// <exception cref="ConfigException">A value is malformed or out of range.</exception>
    public static ControllerOptions From(DaemonSettings settings)
    {
        var defaults = new ControllerOptions();
        var store = settings.String("store", defaults.Store);
        try
        {
            StateStoreOptions.Parse(store);
        }
        catch (FormatException e)
        {
            throw settings.Error("store", e.Message);
        }
        var listen = settings.Endpoints("listen");
        return new ControllerOptions
        {
            Name = settings.String("name", defaults.Name),
            Store = store,
            Listen = listen.Count == 0 ? defaults.Listen : listen,
            TokenFile = settings.String("token_file", defaults.TokenFile),
            HeartbeatInterval = settings.Seconds("heartbeat_interval", defaults.HeartbeatInterval, 0.05, 60),
            HeartbeatTimeout = settings.Seconds("heartbeat_timeout", defaults.HeartbeatTimeout, 0.05, 60),
            DeadAfter = settings.Seconds("dead_after", defaults.DeadAfter, 0.1, 3600),
            KeepJobs = settings.Int("keep_jobs", defaults.KeepJobs, 0, 1_000_000),
            KeepJobsFor = settings.Seconds("keep_jobs_days", defaults.KeepJobsFor / 86400, 0, 3650) * 86400,
        };
    }

    /// <summary>This controller's name: its candidate id in leader elections and the owner of the jobs it runs.</summary>
    public string Name { get; init; } = Environment.MachineName;

    /// <summary><c>sqlite:PATH</c> (the default, one controller) or <c>etcd:URL,URL,URL</c> (several controllers, one leads).</summary>
    public string Store { get; init; } = "sqlite:/var/lib/xenaoe/controller/state.db";

    /// <summary>Where the REST API listens (management address:port); more than one is fine.</summary>
    public IReadOnlyList<IPEndPoint> Listen { get; init; } = [new(IPAddress.Loopback, 7400)];

    /// <summary>File holding the API token; created with a random token when missing.</summary>
    public string TokenFile { get; init; } = "/var/lib/xenaoe/controller/token";

    /// <summary>How often the leader asks every CPU and disk server for its status.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How long one status request may take before it counts as unanswered.</summary>
    public TimeSpan HeartbeatTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A CPU server silent this long is declared dead, fenced and its VMs restarted elsewhere.</summary>
    public TimeSpan DeadAfter { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How many finished jobs the history keeps (the newest); older ones are pruned.</summary>
    public int KeepJobs { get; init; } = 1000;

    /// <summary>How long a finished job is kept at most.</summary>
    public TimeSpan KeepJobsFor { get; init; } = TimeSpan.FromDays(30);

    /// <summary>Largest request body the API accepts.</summary>
    public long MaxRequestBytes { get; init; } = 64 * 1024;

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Name))
            throw new ArgumentException("the controller needs a name (--name)");
        if (Listen.Count == 0)
            throw new ArgumentException("give at least one --listen address");
        if (HeartbeatInterval <= TimeSpan.Zero || HeartbeatTimeout <= TimeSpan.Zero)
            throw new ArgumentException("the heartbeat interval and timeout must be positive");
        if (KeepJobs < 0 || KeepJobsFor < TimeSpan.Zero)
            throw new ArgumentException("the job history to keep (--keep-jobs, --keep-jobs-days) cannot be negative");
        if (DeadAfter < 2 * HeartbeatInterval)
            throw new ArgumentException($"--dead-after ({DeadAfter.TotalSeconds} s) must be at least two heartbeats ({2 * HeartbeatInterval.TotalSeconds} s)");
    }
}
