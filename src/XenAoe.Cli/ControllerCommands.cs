using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using XenAoe.Control;
using XenAoe.Control.Api;
using XenAoe.Control.Model;

namespace XenAoe.Cli;

/// <summary><c>xenaoe controller serve</c>, <c>xenaoe job ...</c>, <c>xenaoe capacity</c>: the control plane.</summary>
internal static class ControllerCommands
{
    private static readonly Option<bool> Json = new("--json") { Description = "Print JSON instead of a table" };

    public static Command Controller()
    {
        var serve = new Command("serve", "Run a controller: REST API and dashboard; the leader also runs jobs and heartbeats (settings: /etc/xenaoe/controller.conf, XENAOE_*, flags)");
        var flags = new DaemonFlags(serve, ControllerOptions.Schema);
        serve.SetAction((parse, ct) => CommandErrors.Guard(() => ControllerDaemon.RunAsync(ControllerOptions.From(flags.Load(parse)), ct)));
        var status = new Command("status", "Which controller leads, and the store") { ControllerConnection.Urls, ControllerConnection.Token, Json };
        status.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            var health = await client.HealthAsync(ct);
            Console.WriteLine(parse.GetValue(Json) ? JsonSerializer.Serialize(health, ApiJsonContext.Default.ControllerHealth)
                : $"{health.Name} answers ({(health.Leader ? "leader" : "standby")}); leader: {health.LeaderName ?? "none"}; store: {health.Store}");
        }));
        return new Command("controller", "The control plane: desired state, jobs, scheduler, heartbeats, failover, REST API") { serve, status };
    }

    public static Command Jobs()
    {
        var list = new Command("list", "Jobs, oldest first") { ControllerConnection.Urls, ControllerConnection.Token, Json };
        list.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            var jobs = await client.JobsAsync(ct);
            if (parse.GetValue(Json))
            {
                Console.WriteLine(JsonSerializer.Serialize(jobs, ApiJsonContext.Default.IReadOnlyListJobRecord));
                return;
            }
            Table.Write(Console.Out, ["ID", "KIND", "TARGET", "STATE", "STEPS", "CREATED", "ERROR"], jobs.Select(j => (IReadOnlyList<string>)
                [j.Id, j.Kind, j.Target, j.State.ToString().ToLowerInvariant(), $"{j.Steps.Count(s => s.State == JobState.Succeeded)}/{j.Steps.Count}",
                 j.CreatedAt.ToLocalTime().ToString("HH:mm:ss", CultureInfo.InvariantCulture), j.Error ?? ""]));
        }));
        var id = new Argument<string>("id") { Description = "Job id" };
        var show = new Command("show", "One job: steps with their times and details, and its log") { id, ControllerConnection.Urls, ControllerConnection.Token, Json };
        show.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            var job = await client.JobAsync(parse.GetValue(id)!, ct);
            if (parse.GetValue(Json))
                Console.WriteLine(JsonSerializer.Serialize(job, ApiJsonContext.Default.JobRecord));
            else
                Print(job);
        }));
        var watch = new Command("watch", "Follow a job until it ends (exit code 1 if it failed)") { id, ControllerConnection.Urls, ControllerConnection.Token };
        watch.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            await FollowAsync(client, await client.JobAsync(parse.GetValue(id)!, ct), json: false, ct);
        }));
        return new Command("job", "Jobs: every operation is one, with steps, progress and a log") { list, show, watch };
    }

    public static Command Capacity()
    {
        var cpus = new Option<int>("--cpus") { Description = "vCPUs of the VM size", DefaultValueFactory = _ => 1 };
        var memory = new Option<int>("--memory") { Description = "MiB of RAM of the VM size", DefaultValueFactory = _ => 512 };
        var disk = new Option<string>("--disk") { Description = "Size of its mirrored disk, e.g. 10G (0: leave disks out)", DefaultValueFactory = _ => "0" };
        var command = new Command("capacity", "How many more VMs of a size fit while keeping N+1 (the VMs of any one CPU server can restart on the others)")
            { cpus, memory, disk, ControllerConnection.Urls, ControllerConnection.Token, Json };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            var report = await client.CapacityAsync(parse.GetValue(cpus), parse.GetValue(memory), Sizes.Parse(parse.GetValue(disk)!), ct);
            if (parse.GetValue(Json))
            {
                Console.WriteLine(JsonSerializer.Serialize(report, ApiJsonContext.Default.CapacityResponse));
                return;
            }
            Console.WriteLine(report.Explanation);
            Console.WriteLine();
            Table.Write(Console.Out, ["HOST", "STATE", "VMS", "FREE MEMORY", "FREE VCPUS"], report.Hosts.Select(h => (IReadOnlyList<string>)
                [h.Host, h.State, $"{h.Vms}", $"{h.FreeMemoryMiB} MiB", $"{h.FreeCpus}"]));
        }));
        return command;
    }

    /// <summary>Prints a job's steps as they change until it ends; a failed job is an error (exit code 1).</summary>
    public static async Task<JobRecord> FollowAsync(ControllerClient client, JobRecord job, bool json, CancellationToken ct)
    {
        if (!json)
            Console.Error.WriteLine($"job {job.Id}: {job.Kind} {job.Target}");
        var shown = new HashSet<string>();
        var done = await client.WaitAsync(job.Id, j =>
        {
            if (json)
                return;
            foreach (var step in j.Steps)
            {
                if (shown.Add($"{step.Name}:{step.State}"))
                    Console.Error.WriteLine($"  {step.Name}: {step.State.ToString().ToLowerInvariant()}{(step.Detail is null ? "" : $" ({step.Detail})")}");
            }
        }, ct);
        if (json)
            Console.WriteLine(JsonSerializer.Serialize(done, ApiJsonContext.Default.JobRecord));
        else
            Console.WriteLine($"job {done.Id} {done.State.ToString().ToLowerInvariant()}: {(done.Error ?? done.Log.LastOrDefault()?.Text)}");
        if (done.State != JobState.Succeeded)
            throw new IOException($"job {done.Id} ({done.Kind} {done.Target}) failed: {done.Error}");
        return done;
    }

    private static void Print(JobRecord job)
    {
        Console.WriteLine($"job {job.Id}: {job.Kind} {job.Target}, {job.State.ToString().ToLowerInvariant()}{(job.Error is null ? "" : $": {job.Error}")}");
        Console.WriteLine($"created {job.CreatedAt:u}, owner {job.Owner ?? "-"}, attempts {job.Attempts}");
        Console.WriteLine();
        Table.Write(Console.Out, ["STEP", "STATE", "TIME", "DETAIL"], job.Steps.Select(s => (IReadOnlyList<string>)
            [s.Name, s.State.ToString().ToLowerInvariant(),
             s.FinishedAt is { } end && s.StartedAt is { } start ? $"{(end - start).TotalMilliseconds:0} ms" : "-", s.Detail ?? ""]));
        Console.WriteLine();
        foreach (var line in job.Log)
            Console.WriteLine($"{line.At.ToLocalTime():HH:mm:ss.fff} {line.Text}");
    }
}
