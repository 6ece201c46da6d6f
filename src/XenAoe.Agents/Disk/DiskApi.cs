using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using XenAoe.Aoe;
using XenAoe.Storage;

namespace XenAoe.Agents.Disk;

public sealed record ResizeRequest(long SizeBytes, bool AllowShrink);

public sealed record MacListRequest(IReadOnlyList<string> Macs);

public sealed record ConfigStringRequest(string Value);

public sealed record ErrorResponse(string Error);

/// <summary>A disk server's identity and resources: what the controller lists for it.</summary>
public sealed record DiskInfo(string Name, IReadOnlyList<StorageNic> StorageNics, PoolSpace Pool);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(ResizeRequest))]
[JsonSerializable(typeof(MacListRequest))]
[JsonSerializable(typeof(ConfigStringRequest))]
[JsonSerializable(typeof(ErrorResponse))]
[JsonSerializable(typeof(PoolSpace))]
[JsonSerializable(typeof(DiskInfo))]
[JsonSerializable(typeof(Dictionary<string, long>))]
[JsonSerializable(typeof(IReadOnlyDictionary<string, long>))]
[JsonSerializable(typeof(IReadOnlyList<VolumeSpec>))]
public sealed partial class DiskApiJsonContext : JsonSerializerContext;

/// <summary>The disk daemon's local HTTP API: the same operations as <see cref="IDiskVolumes"/>, one route each.</summary>
public static class DiskApi
{
    public static void Map(IEndpointRouteBuilder app, DiskAdministrator admin, DiskServerOptions options)
    {
        var v1 = app.MapGroup("/v1");
        v1.MapGet("/info", async (CancellationToken ct) => Results.Ok(new DiskInfo(options.Name, StorageNic.Read(options.Interfaces), await admin.SpaceAsync(ct))));
        v1.MapGet("/volumes", async (CancellationToken ct) => Results.Ok(await admin.ListAsync(ct)));
        v1.MapPost("/volumes", (VolumeSpec spec, CancellationToken ct) =>
            Guard(async () => Results.Created($"/v1/volumes/{spec.Name}", await admin.CreateAsync(spec, ct))));
        v1.MapPatch("/volumes/{name}", (string name, ResizeRequest request, CancellationToken ct) =>
            Guard(async () => Results.Ok(await admin.ResizeAsync(name, request.SizeBytes, request.AllowShrink, ct))));
        v1.MapDelete("/volumes/{name}", (string name, bool? force, CancellationToken ct) =>
            Guard(async () =>
            {
                await admin.DeleteAsync(name, force ?? false, ct);
                return Results.NoContent();
            }));
        v1.MapPut("/volumes/{name}/reservation", (string name, MacListRequest request, CancellationToken ct) =>
            Guard(async () => Results.Ok(await admin.SetReservationAsync(name, ParseMacs(request), ct))));
        v1.MapPut("/volumes/{name}/mask", (string name, MacListRequest request, CancellationToken ct) =>
            Guard(async () => Results.Ok(await admin.SetMacMaskAsync(name, ParseMacs(request), ct))));
        v1.MapPut("/volumes/{name}/config", (string name, ConfigStringRequest request, CancellationToken ct) =>
            Guard(async () => Results.Ok(await admin.SetConfigStringAsync(name, request.Value, ct))));
        v1.MapGet("/pool", async (CancellationToken ct) => Results.Ok(await admin.SpaceAsync(ct)));
        v1.MapGet("/counters", async (CancellationToken ct) => Results.Ok(await admin.CountersAsync(ct)));
    }

    private static MacAddress[] ParseMacs(MacListRequest request) =>
        [.. (request.Macs ?? []).Select(m => MacAddress.TryParse(m, out var mac) ? mac : throw new StorageException($"'{m}' is not a MAC address"))];

    /// <summary>Turns a refusal into a 4xx with its reason; anything else is a real fault and surfaces as 500.</summary>
    private static async Task<IResult> Guard(Func<Task<IResult>> action)
    {
        try
        {
            return await action();
        }
        catch (StorageException e)
        {
            var status = e.Error switch
            {
                StorageError.NotFound => StatusCodes.Status404NotFound,
                StorageError.Conflict => StatusCodes.Status409Conflict,
                _ => StatusCodes.Status400BadRequest,
            };
            return Results.Json(new ErrorResponse(e.Message), DiskApiJsonContext.Default.ErrorResponse, statusCode: status);
        }
    }
}
