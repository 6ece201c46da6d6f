using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using XenAoe.Agents.Disk;
using XenAoe.Hypervisors;
using XenAoe.Mirror;

namespace XenAoe.Agents.Host;

/// <summary>The host daemon's HTTP API (unix socket for local tools, management address for other hosts): one route per operation.</summary>
public static class HostApi
{
    public static void Map(IEndpointRouteBuilder app, VmManager vms)
    {
        var v1 = app.MapGroup("/v1");
        v1.MapGet("/host", () => Results.Ok(vms.Info()));
        v1.MapGet("/vms", async (CancellationToken ct) => Results.Ok(await vms.ListAsync(ct)));
        v1.MapGet("/vms/{name}", (string name, CancellationToken ct) => Guard(async () => Results.Ok(await vms.GetAsync(name, ct))));
        v1.MapPost("/vms", (StartVmRequest request, CancellationToken ct) =>
            Guard(async () => Results.Created($"/v1/vms/{request.Vm.Name}", await vms.StartAsync(request, ct))));
        v1.MapPost("/vms/{name}/stop", (string name, StopVmRequest? request, CancellationToken ct) => Guard(async () =>
        {
            var graceful = request?.GracefulSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : (TimeSpan?)null;
            await vms.StopAsync(name, graceful, ct);
            return Results.NoContent();
        }));
        v1.MapPost("/vms/{name}/kill", (string name, CancellationToken ct) => Guard(async () =>
        {
            await vms.KillAsync(name, ct);
            return Results.NoContent();
        }));
        v1.MapPost("/vms/{name}/reboot", (string name, CancellationToken ct) => Guard(async () =>
        {
            await vms.RebootAsync(name, ct);
            return Results.NoContent();
        }));
        v1.MapPost("/vms/{name}/disks/{id}/replace-leg", (string name, string id, ReplaceLegRequest request, CancellationToken ct) =>
            Guard(async () => Results.Ok(await vms.ReplaceLegAsync(name, id, request, ct))));
        v1.MapPost("/vms/{name}/migration", (string name, StartMigrationRequest request, CancellationToken ct) =>
            Guard(async () => Results.Ok(await vms.StartMigrationAsync(name, request, ct))));
        v1.MapGet("/vms/{name}/migration", (string name, CancellationToken ct) =>
            Guard(async () => await vms.MigrationOfAsync(name, ct) is { } report ? Results.Ok(report) : Results.NoContent()));
        v1.MapPost("/vms/{name}/migration/handover", (string name, CancellationToken ct) => Guard(async () => Results.Ok(await vms.HandOverAsync(name, ct))));
        v1.MapPost("/vms/{name}/migration/cancel", (string name, CancellationToken ct) => Guard(async () =>
        {
            await vms.CancelMigrationAsync(name, ct);
            return Results.NoContent();
        }));
        v1.MapPost("/disks/format", (FormatDiskRequest request, CancellationToken ct) => Guard(async () => Results.Ok(await vms.FormatDiskAsync(request, ct))));
        v1.MapPost("/incoming", (IncomingVmRequest request, CancellationToken ct) => Guard(async () => Results.Ok(await vms.PrepareIncomingAsync(request, ct))));
        v1.MapPost("/incoming/{name}/activate", (string name, CancellationToken ct) => Guard(async () =>
        {
            await vms.ActivateIncomingAsync(name, ct);
            return Results.NoContent();
        }));
        v1.MapPost("/incoming/{name}/abort", (string name, CancellationToken ct) => Guard(async () =>
        {
            await vms.AbortIncomingAsync(name, ct);
            return Results.NoContent();
        }));
    }

    /// <summary>Refusals become 4xx with their reason; what the storage or hypervisor refuses says why; anything else is a 500.</summary>
    private static async Task<IResult> Guard(Func<Task<IResult>> action)
    {
        try
        {
            return await action();
        }
        catch (HostException e)
        {
            return Error(e.Message, e.Status);
        }
        catch (MirrorAssemblyException e)
        {
            return Error($"the VM's disks cannot be assembled: {e.Message}", StatusCodes.Status409Conflict);
        }
        catch (HypervisorException e)
        {
            return Error($"the hypervisor refused: {e.Message}", StatusCodes.Status409Conflict);
        }
        catch (TimeoutException e)
        {
            return Error($"timed out: {e.Message}", StatusCodes.Status504GatewayTimeout);
        }
    }

    private static IResult Error(string message, int status) =>
        Results.Json(new ErrorResponse(message), HostApiJsonContext.Default.ErrorResponse, statusCode: status);
}
