using System.Net;

namespace XenAoe.Control;

/// <summary>How a controller runs. <see cref="Validate"/> is called at start.</summary>
public sealed class ControllerOptions
{
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
