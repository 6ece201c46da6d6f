using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.AspNetCore.Routing;
using XenAoe.Agents;
using XenAoe.Agents.Host;
using XenAoe.Control.Jobs;
using XenAoe.Control.Join;
using XenAoe.Control.Model;
using XenAoe.Control.Store;

namespace XenAoe.Control.Api;

/// <summary>
/// The REST API (<c>/api/v1</c>): the inventory, the VMs and their operations, the jobs, capacity. Every call needs the bearer
/// token except <c>/api/v1/health</c>; every operation is a job (202 with the job) that the leading controller runs, so any
/// controller (leader or standby) accepts them. Refusals are 4xx with a reason in <c>{"error": ...}</c>.
/// </summary>
public static partial class ControllerApi
{
    /// <param name="clusterToken">The API token, which <c>POST /api/v1/join</c> gives a machine for a valid join token.</param>
    public static void Map(IEndpointRouteBuilder app, ControllerState state, Placement placement, IAgents agents, string clusterToken, Func<Task<ControllerHealth>> health)
    {
        var api = app.MapGroup("/api/v1");
        api.MapGet("/health", async () => Results.Ok(await health()));

        api.MapGet("/hosts", async (CancellationToken ct) => Results.Ok(await state.HostsAsync(ct)));
        api.MapPost("/hosts", async (RegisterHostRequest request, CancellationToken ct) =>
        {
            CheckName(request.Name, "host");
            CheckUrl(request.ApiUrl);
            var info = await Reach(token => agents.Host(request.ApiUrl).InfoAsync(token), $"host daemon at {request.ApiUrl}", ct);
            CheckSameName(info.Name, request.Name, request.ApiUrl, "host");
            var now = state.Time.GetUtcNow();
            HostRecord Reported(HostRecord h) => h with
            {
                ApiUrl = request.ApiUrl, Labels = request.Labels ?? [], Cpus = info.Cpus, MemoryMiB = info.MemoryMiB, StorageNics = info.StorageNics,
                LastSeen = now, RegisteredAt = now,
            };
            var host = await state.RegisterHostAsync(Reported(new HostRecord { Name = request.Name, ApiUrl = request.ApiUrl }), Reported, ct);
            return Results.Created($"/api/v1/hosts/{host.Name}", host);
        });
        api.MapDelete("/hosts/{name}", async (string name, CancellationToken ct) =>
        {
            CheckExists(name, $"no host named {name}");
            await state.RemoveHostAsync(name, ct);
            return Results.NoContent();
        });
        api.MapGet("/hosts/{name}", async (string name, CancellationToken ct) =>
            await FindHostAsync(state, name, ct) is { } host ? Results.Ok(host) : NotFound($"no host named {name}"));
        api.MapPost("/hosts/{name}/resume", async (string name, CancellationToken ct) =>
        {
            var current = await state.HostAsync(name, ct) ?? throw new ControlException($"no host named {name}", 404);
            if (current.State != HostState.Maintenance)
                throw new ControlException($"{name} is {current.State.ToString().ToLowerInvariant()}, not in maintenance", 409);
            var host = await state.UpdateHostAsync(name, h => h with { State = HostState.Up, StateReason = "back from maintenance" }, ct);
            return Results.Ok(host);
        });
        api.MapPost("/hosts/{name}/evacuate", async (string name, CancellationToken ct) =>
        {
            _ = await FindHostAsync(state, name, ct) ?? throw new ControlException($"no host named {name}", 404);
            return Accepted(await state.SubmitJobAsync(JobKinds.HostEvacuate, name, new NoParameters(), ct));
        });

        api.MapGet("/disk-servers", async (CancellationToken ct) => Results.Ok(await state.DiskServersAsync(ct)));
        api.MapPost("/disk-servers", async (RegisterDiskServerRequest request, CancellationToken ct) =>
        {
            CheckName(request.Name, "disk server");
            CheckUrl(request.ApiUrl);
            if (request.Shelf >= 0xFFFF)
                throw new ControlException("shelf 65535 is the broadcast address");
            var info = await Reach(token => agents.Disk(request.ApiUrl).InfoAsync(token), $"disk daemon at {request.ApiUrl}", ct);
            CheckSameName(info.Name, request.Name, request.ApiUrl, "disk");
            var now = state.Time.GetUtcNow();
            var disk = await state.RegisterDiskServerAsync(request.Name, request.Shelf, (current, shelf) =>
                (current ?? new DiskServerRecord { Name = request.Name, ApiUrl = request.ApiUrl, Shelf = shelf }) with
                {
                    ApiUrl = request.ApiUrl, Labels = request.Labels ?? [], StorageNics = info.StorageNics, FreeBytes = info.Pool.FreeBytes,
                    TotalBytes = info.Pool.TotalBytes, RegisteredAt = now,
                }, ct);
            return Results.Created($"/api/v1/disk-servers/{disk.Name}", disk);
        });
        api.MapDelete("/disk-servers/{name}", async (string name, CancellationToken ct) =>
        {
            CheckExists(name, $"no disk server named {name}");
            await state.RemoveDiskServerAsync(name, ct);
            return Results.NoContent();
        });

        api.MapPost("/disk-servers/{name}/drain", async (string name, CancellationToken ct) =>
        {
            _ = await FindDiskServerAsync(state, name, ct) ?? throw new ControlException($"no disk server named {name}", 404);
            return Accepted(await state.SubmitJobAsync(JobKinds.DiskDrain, name, new NoParameters(), ct));
        });

        api.MapGet("/vms", async (CancellationToken ct) => Results.Ok(await state.VmsAsync(ct)));
        api.MapGet("/vms/{name}", async (string name, CancellationToken ct) =>
            await FindVmAsync(state, name, ct) is { } vm ? Results.Ok(vm) : NotFound($"no VM named {name}"));
        api.MapPost("/vms", async (CreateVmRequest request, CancellationToken ct) =>
        {
            CheckName(request.Name, "VM");
            if (request.Cpus is < 1 or > 255)
                throw new ControlException($"cpus must be 1..255, not {request.Cpus}");
            if (request.MemoryMiB is < 64 or > 4 * 1024 * 1024)
                throw new ControlException($"memoryMiB must be 64..4194304, not {request.MemoryMiB}");
            if (request.DiskBytes < 1 << 20 || request.DiskBytes % 512 != 0)
                throw new ControlException("diskBytes must be at least 1 MiB and a multiple of 512");
            if (string.IsNullOrWhiteSpace(request.Kernel))
                throw new ControlException("kernel is required (direct kernel boot)");
            if (request.Mac is { } mac && !XenAoe.Aoe.MacAddress.TryParse(mac, out _))
                throw new ControlException($"'{mac}' is not a MAC address");
            if (await state.VmAsync(request.Name, ct) is not null)
                throw new ControlException($"a VM named {request.Name} already exists", 409);
            var parameters = new CreateVmParameters(request.Cpus, request.MemoryMiB, request.DiskBytes, request.Kernel, request.Initrd, request.Cmdline,
                request.Image, request.Host, request.Mac, request.VncDisplay);
            return Accepted(await state.SubmitJobAsync(JobKinds.VmCreate, request.Name, parameters, ct));
        });
        api.MapPost("/vms/{name}/start", (string name, CancellationToken ct) => VmJob(state, JobKinds.VmStart, name, new NoParameters(), ct));
        api.MapPost("/vms/{name}/stop", (string name, StopRequest? request, CancellationToken ct) =>
            VmJob(state, JobKinds.VmStop, name, new StopVmParameters(request?.Force == true), ct));
        api.MapPost("/vms/{name}/reboot", (string name, CancellationToken ct) => VmJob(state, JobKinds.VmReboot, name, new NoParameters(), ct));
        api.MapPost("/vms/{name}/migrate", async (string name, MigrateRequest? request, CancellationToken ct) =>
        {
            if (request?.To is { } to && await FindHostAsync(state, to, ct) is null)
                throw new ControlException($"no host named {to}", 404);
            return await VmJob(state, JobKinds.VmMigrate, name, new MigrateVmParameters(request?.To), ct);
        });
        api.MapPost("/vms/{name}/disks/{id}/replace-leg", async (string name, string id, ReplaceVmLegRequest request, CancellationToken ct) =>
        {
            var vm = await FindVmAsync(state, name, ct) ?? throw new ControlException($"no VM named {name}", 404);
            var disk = vm.Disks.FirstOrDefault(d => d.Id == id) ?? throw new ControlException($"{name} has no disk '{id}'", 404);
            if ((request.From is null) == (request.Index is null))
                throw new ControlException("give exactly one of from (the disk server whose leg goes) or index (0 or 1)");
            if (request.Index is { } index and not (0 or 1))
                throw new ControlException($"index must be 0 or 1, not {index}");
            if (request.From is { } from)
            {
                CheckName(from, "disk server");
                if (disk.Legs.All(l => l.DiskServer != from))
                    throw new ControlException($"{name} disk {id} has no leg on {from} (its legs are on {string.Join(" and ", disk.Legs.Select(l => l.DiskServer))})", 409);
            }
            if (request.To is { } to)
            {
                CheckName(to, "disk server");
                var target = await state.DiskServerAsync(to, ct) ?? throw new ControlException($"no disk server named {to}", 404);
                if (disk.Legs.Any(l => l.DiskServer == to))
                    throw new ControlException($"{to} already holds a leg of {name} disk {id}: the new leg must go to a third disk server", 409);
                if (target.Draining)
                    throw new ControlException($"{to} is draining: it takes no new legs", 409);
            }
            return Accepted(await state.SubmitJobAsync(JobKinds.VmReplaceLeg, name, new ReplaceLegParameters(id, request.From, request.Index, request.To), ct));
        });
        api.MapPost("/vms/{name}/failover", (string name, CancellationToken ct) => VmJob(state, JobKinds.VmFailover, name, new FailoverVmParameters(), ct));
        api.MapDelete("/vms/{name}", (string name, CancellationToken ct) => VmJob(state, JobKinds.VmDelete, name, new NoParameters(), ct));

        var tokens = new JoinTokens(state);
        api.MapPost("/cluster", async (CancellationToken ct) => Results.Created("/api/v1/cluster", await tokens.InitAsync(ct)));
        api.MapGet("/cluster", async (CancellationToken ct) =>
            await tokens.ClusterAsync(ct) is { } cluster ? Results.Ok(cluster) : NotFound("the cluster has no identity yet: run `xenaoe cluster init`"));
        api.MapPost("/join-tokens", async (CreateJoinTokenRequest? request, CancellationToken ct) =>
        {
            if (request?.TtlSeconds is { } seconds && !(seconds >= JoinTokens.MinTtl.TotalSeconds && seconds <= JoinTokens.MaxTtl.TotalSeconds))
                throw new ControlException($"ttlSeconds must be {JoinTokens.MinTtl.TotalSeconds:0}-{JoinTokens.MaxTtl.TotalSeconds:0}, not {seconds}");
            var (record, token, cluster) = await tokens.CreateAsync(request?.TtlSeconds is { } ttl ? TimeSpan.FromSeconds(ttl) : JoinTokens.DefaultTtl, ct);
            return Results.Created($"/api/v1/join-tokens/{record.Id}", new JoinTokenCreated(record.Id, token, record.ExpiresAt, cluster.Id));
        });
        api.MapGet("/join-tokens", async (CancellationToken ct) =>
        {
            var now = state.Time.GetUtcNow();
            return Results.Ok((IReadOnlyList<JoinTokenInfo>)[.. (await tokens.ListAsync(ct)).Select(t => new JoinTokenInfo(t.Id, t.CreatedAt, t.ExpiresAt, now >= t.ExpiresAt, t.Joined))]);
        });
        api.MapDelete("/join-tokens/{id}", async (string id, CancellationToken ct) =>
        {
            await tokens.RevokeAsync(id, ct);
            return Results.NoContent();
        });
        // The one call besides health that needs no bearer token: the join token is the credential.
        api.MapPost("/join", async (JoinRequest request, CancellationToken ct) =>
        {
            if (request.Role is not ("disk" or "cpu"))
                throw new ControlException($"role must be disk or cpu, not '{request.Role}'");
            CheckName(request.Name, request.Role == "disk" ? "disk server" : "host");
            var cluster = await tokens.RedeemAsync(request.Token ?? "", request.Role, request.Name, ct);
            return Results.Ok(new JoinResponse(cluster.Id, clusterToken, state.Time.GetUtcNow()));
        });

        api.MapGet("/jobs", async (CancellationToken ct) => Results.Ok(await state.JobsAsync(ct)));
        api.MapGet("/jobs/{id}", async (string id, CancellationToken ct) =>
            JobIdPattern().IsMatch(id) && await state.JobAsync(id, ct) is { } job ? Results.Ok(job) : NotFound($"no job {id}"));

        api.MapGet("/capacity", async (int? cpus, int? memoryMiB, long? diskBytes, CancellationToken ct) =>
        {
            if (cpus is null or < 1 || memoryMiB is null or < 1)
                throw new ControlException("give cpus and memoryMiB (positive integers), e.g. /api/v1/capacity?cpus=1&memoryMiB=512");
            if (diskBytes < 0)
                throw new ControlException($"diskBytes must be 0 or more, not {diskBytes}");
            return Results.Ok(await placement.CapacityAsync(cpus.Value, memoryMiB.Value, diskBytes ?? 0, ct));
        });
    }

    /// <summary>
    /// Every call but the health check carries <c>Authorization: Bearer TOKEN</c>; refusals, bad input and store trouble become
    /// JSON errors with a reason (never a stack trace).
    /// </summary>
    public static void UseErrorsAndAuthentication(IApplicationBuilder app, string token)
    {
        var expected = Encoding.UTF8.GetBytes(token);
        app.Use(async (context, next) =>
        {
            try
            {
                // Routing matches paths in any letter case, so this test must too: /API/v1/vms is /api/v1/vms.
                var path = context.Request.Path.Value ?? "";
                if (path.StartsWith("/api/", StringComparison.OrdinalIgnoreCase) && !path.Equals("/api/v1/health", StringComparison.OrdinalIgnoreCase)
                    && !path.Equals("/api/v1/join", StringComparison.OrdinalIgnoreCase) && !ApiToken.Matches(context, expected))
                {
                    context.Response.Headers.WWWAuthenticate = "Bearer";
                    await Write(context, StatusCodes.Status401Unauthorized, "missing or wrong bearer token (Authorization: Bearer TOKEN; the token is in the controller's token file)");
                    return;
                }
                await next(context);
                // Refusals made by the framework (no route, wrong method or content type, body over the limit) set a status but write nothing.
                if (context.Response.StatusCode >= 400 && !context.Response.HasStarted)
                    await Write(context, context.Response.StatusCode, FrameworkRefusal(context));
            }
            catch (ControlException e)
            {
                await Write(context, e.Status, e.Message);
            }
            catch (BadHttpRequestException e)
            {
                // The framework's message names the parameter; the JSON reader's names the field and what is wrong with it.
                await Write(context, e.StatusCode, e.InnerException is JsonException json ? $"{e.Message} {json.Message}" : e.Message);
            }
            catch (StoreUnavailableException e)
            {
                await Write(context, StatusCodes.Status503ServiceUnavailable, $"the state store is unavailable: {e.Message}");
            }
        });
    }

    private static Task Write(HttpContext context, int status, string message)
    {
        if (context.Response.HasStarted)
            return Task.CompletedTask;
        context.Response.StatusCode = status;
        return context.Response.WriteAsJsonAsync(new ApiError(message), ApiJsonContext.Default.ApiError);
    }

    private static string FrameworkRefusal(HttpContext context) => context.Response.StatusCode switch
    {
        StatusCodes.Status404NotFound => $"no such route: {context.Request.Method} {context.Request.Path} (the routes are in /openapi/v1.json)",
        StatusCodes.Status405MethodNotAllowed => $"{context.Request.Path} does not take {context.Request.Method}",
        StatusCodes.Status413PayloadTooLarge =>
            $"the request body is too large: the limit is {context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize} bytes",
        StatusCodes.Status415UnsupportedMediaType => "the request body must be JSON (Content-Type: application/json)",
        var status => ReasonPhrases.GetReasonPhrase(status),
    };

    /// <summary>
    /// A name from a path or a body that breaks the naming rule cannot name a record, and some such strings (control characters,
    /// over 1 KiB) are not even valid store keys: they are "not found" without asking the store.
    /// </summary>
    private static async Task<VmRecord?> FindVmAsync(ControllerState state, string name, CancellationToken ct) =>
        NamePattern().IsMatch(name) ? await state.VmAsync(name, ct) : null;

    private static async Task<HostRecord?> FindHostAsync(ControllerState state, string name, CancellationToken ct) =>
        NamePattern().IsMatch(name) ? await state.HostAsync(name, ct) : null;

    private static async Task<DiskServerRecord?> FindDiskServerAsync(ControllerState state, string name, CancellationToken ct) =>
        NamePattern().IsMatch(name) ? await state.DiskServerAsync(name, ct) : null;

    private static async Task<IResult> VmJob<TParameters>(ControllerState state, JobKind<TParameters> kind, string name, TParameters parameters, CancellationToken ct)
    {
        _ = await FindVmAsync(state, name, ct) ?? throw new ControlException($"no VM named {name}", 404);
        return Accepted(await state.SubmitJobAsync(kind, name, parameters, ct));
    }

    private static IResult Accepted(JobRecord job) => Results.Json(job, ApiJsonContext.Default.JobRecord, statusCode: StatusCodes.Status202Accepted);

    private static IResult NotFound(string message) => Results.Json(new ApiError(message), ApiJsonContext.Default.ApiError, statusCode: StatusCodes.Status404NotFound);

    private static void CheckName(string? name, string what)
    {
        if (name is null || !NamePattern().IsMatch(name))
            throw new ControlException($"{what} name '{name}' must match [a-z0-9][a-z0-9-]{{0,31}}");
    }

    /// <summary>A name from a path that breaks the naming rule names no record: "not found" without asking the store.</summary>
    private static void CheckExists(string name, string missing)
    {
        if (!NamePattern().IsMatch(name))
            throw new ControlException(missing, 404);
    }

    /// <summary>The daemon at the URL must be the one registering: a URL copied from another machine would overwrite its record.</summary>
    private static void CheckSameName(string daemonName, string name, string url, string what)
    {
        if (daemonName != name)
            throw new ControlException($"the {what} daemon at {url} is named {daemonName}, not {name}", 409);
    }

    private static void CheckUrl(string? url)
    {
        if (url is null || !Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp)
            throw new ControlException($"apiUrl '{url}' must be an http:// URL such as http://10.77.0.21:7300");
    }

    private static readonly TimeSpan RegistrationTimeout = TimeSpan.FromSeconds(5);

    /// <summary>A registration's first call to the daemon, bounded to <see cref="RegistrationTimeout"/>: a wrong URL is a 502 at once, not a hang.</summary>
    private static async Task<T> Reach<T>(Func<CancellationToken, Task<T>> call, string what, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(RegistrationTimeout);
        try
        {
            return await call(limit.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new ControlException($"cannot reach the {what}: no answer within {RegistrationTimeout.TotalSeconds:0} s", 502);
        }
        catch (Exception e) when (e is HttpRequestException or TimeoutException or HostException or XenAoe.Storage.StorageException)
        {
            throw new ControlException($"cannot reach the {what}: {e.Message}", 502);
        }
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,31}$")]
    private static partial Regex NamePattern();

    /// <summary>Job ids are decimal counters (zero-padded to six digits, longer once past 999999).</summary>
    [GeneratedRegex("^[0-9]{1,19}$")]
    private static partial Regex JobIdPattern();
}
