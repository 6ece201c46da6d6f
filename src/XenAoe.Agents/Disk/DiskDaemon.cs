using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using XenAoe.Storage;

namespace XenAoe.Agents.Disk;

/// <summary>Runs a disk server: the pool (locked for this process), its AoE targets on every storage NIC, and the local API.</summary>
public static class DiskDaemon
{
    public static async Task RunAsync(DiskServerOptions options, CancellationToken ct = default)
    {
        options.Validate();
        using var pool = StoragePool.Open(options.PoolDirectory, wait: TimeSpan.FromSeconds(5));
        using var admin = new DiskAdministrator(pool, options.Target);
        var socket = options.ApiSocket ?? DiskApiClient.SocketPath(options.PoolDirectory);
        File.Delete(socket); // a stale socket from a crashed daemon; the pool lock proves no live daemon owns it

        var builder = DaemonBuilder.Create();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.ListenUnixSocket(socket);
            if (options.Listen is { } listen)
                k.Listen(listen);
        });
        builder.Services.Configure<JsonOptions>(o =>
        {
            o.SerializerOptions.TypeInfoResolverChain.Insert(0, StorageJsonContext.Default);
            o.SerializerOptions.TypeInfoResolverChain.Insert(1, DiskApiJsonContext.Default);
        });
        builder.Services.AddSingleton(admin);
        builder.Services.AddSingleton(options);
        builder.Services.AddHostedService<DiskServer>();
        options.Registration?.AddRegistrar(builder.Services, options.Token!, "api/v1/disk-servers",
            new RegisterDiskServerRequest(options.Name, $"http://{options.Listen}", options.Shelf, options.Registration.Labels),
            RegistrationJsonContext.Default.RegisterDiskServerRequest);

        await using var app = builder.Build();
        if (options.Token is { } token)
            ApiToken.RequireOverNetwork(app, token);
        DiskApi.Map(app, admin, options);
        try
        {
            await app.RunAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(socket);
        }
    }
}
