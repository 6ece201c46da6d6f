using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace XenAoe.Agents;

/// <summary>
/// The cluster's API token: the controller's API and the agents' management-network APIs require it as a bearer token. Requests
/// over an agent's unix socket are not asked for it: only local root reaches that socket.
/// </summary>
public static class ApiToken
{
    /// <summary>The token in <paramref name="path"/>, or a new random one written there (owner-only) when the file does not exist.</summary>
    public static string ReadOrCreate(string path)
    {
        if (File.Exists(path))
            return Read(path);
        if (!OperatingSystem.IsLinux())
            throw new PlatformNotSupportedException("XenAoE daemons run on Linux");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
        // Created owner-only, so the token is never readable by others, not even for a moment.
        using (var file = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        using (var writer = new StreamWriter(file))
            writer.WriteLine(token);
        return token;
    }

    /// <summary>The token in an existing file; refuses one shorter than 16 characters.</summary>
    public static string Read(string path)
    {
        var token = File.ReadAllText(path).Trim();
        if (token.Length < 16)
            throw new ArgumentException($"the token in {path} is shorter than 16 characters");
        return token;
    }

    /// <summary>True when the request carries <c>Authorization: Bearer TOKEN</c> with this token (compared in constant time).</summary>
    public static bool Matches(HttpContext context, byte[] expected)
    {
        var header = context.Request.Headers.Authorization.ToString();
        // The scheme name is case-insensitive (RFC 9110); the token is not.
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return false;
        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header["Bearer ".Length..].Trim()), expected);
    }

    /// <summary>An agent's API: requests that came over TCP need the token; those over the unix socket do not.</summary>
    public static void RequireOverNetwork(IApplicationBuilder app, string token)
    {
        var expected = Encoding.UTF8.GetBytes(token);
        app.Use(async (context, next) =>
        {
            if (context.Connection.LocalIpAddress is not null && !Matches(context, expected))
            {
                context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                context.Response.Headers.WWWAuthenticate = "Bearer";
                await context.Response.WriteAsJsonAsync(new Disk.ErrorResponse("missing or wrong bearer token: this API needs the cluster's token over the network"),
                    Disk.DiskApiJsonContext.Default.ErrorResponse);
                return;
            }
            await next(context);
        });
    }
}
