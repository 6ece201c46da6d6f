using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace XenAoe.Control.Web;

/// <summary>
/// The web dashboard: one page (embedded in this assembly) that reads the REST API with the token the user gives it (kept in
/// the browser's session storage, sent as a bearer token) and shows hosts, disk servers, VMs and jobs, refreshed every second.
/// </summary>
public static class Dashboard
{
    private static readonly Lazy<byte[]> Page = new(() =>
    {
        using var stream = typeof(Dashboard).Assembly.GetManifestResourceStream("XenAoe.Control.Web.dashboard.html")
            ?? throw new InvalidOperationException("the dashboard page is not embedded in the assembly");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    });

    public static void Map(IEndpointRouteBuilder app) =>
        app.MapGet("/", () => Results.Bytes(Page.Value, "text/html; charset=utf-8")).ExcludeFromDescription();
}
