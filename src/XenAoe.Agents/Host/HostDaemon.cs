using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using XenAoe.Hypervisors.Qemu;
using XenAoe.Nbd;

namespace XenAoe.Agents.Host;

/// <summary>
/// Runs a CPU server: the VM manager with its data paths, one NBD server (a unix socket the hypervisor opens every VM disk
/// through), the QEMU driver, and the HTTP API on a unix socket and, for other hosts, on the management address.
/// </summary>
public static class HostDaemon
{
    /// <summary>Printed once the API answers: scripts and tests wait for it.</summary>
    public const string ReadyLine = "host daemon ready";

    public static async Task RunAsync(HostDaemonOptions options, CancellationToken ct = default)
    {
        options.Validate();
        Directory.CreateDirectory(options.StateDirectory);
        Directory.CreateDirectory(options.RunDirectory);
        var socket = options.ApiSocketPath;
        File.Delete(socket); // a stale socket from a crashed daemon

        var builder = DaemonBuilder.Create();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.ListenUnixSocket(socket);
            if (options.Listen is { } listen)
                k.Listen(listen);
        });
        builder.Services.Configure<JsonOptions>(o => o.SerializerOptions.TypeInfoResolverChain.Insert(0, HostApiJsonContext.Default));
        builder.Services.AddSingleton(options);
        // Requests run on the receive loop: the mirror never blocks a thread (see NbdServerOptions.RunRequestsInline).
        builder.Services.AddSingleton(sp => new NbdServer(new NbdServerOptions { RunRequestsInline = true }, sp.GetRequiredService<ILogger<NbdServer>>()));
        builder.Services.AddSingleton(sp => new QemuDriver(
            new QemuDriverOptions { RunDirectory = options.RunDirectory, Accelerator = options.Accelerator },
            sp.GetRequiredService<ILogger<QemuDriver>>()));
        builder.Services.AddSingleton(sp => new VmManager(options, sp.GetRequiredService<QemuDriver>(), sp.GetRequiredService<NbdServer>(),
            sp.GetRequiredService<ILogger<VmManager>>()));
        options.Registration?.AddRegistrar(builder.Services, options.Token!, "api/v1/hosts",
            new RegisterHostRequest(options.Name, options.ApiUrl!, options.Registration.Labels), RegistrationJsonContext.Default.RegisterHostRequest);

        await using var app = builder.Build();
        var nbd = app.Services.GetRequiredService<NbdServer>();
        var vms = app.Services.GetRequiredService<VmManager>();
        if (options.Token is { } token)
            ApiToken.RequireOverNetwork(app, token);
        HostApi.Map(app, vms);
        try
        {
            await nbd.StartAsync([new System.Net.Sockets.UnixDomainSocketEndPoint(options.NbdSocketPath)], ct).ConfigureAwait(false);
            await app.StartAsync(ct).ConfigureAwait(false);
            Console.WriteLine($"{ReadyLine}: {options.Name}, API on {socket}{(options.ApiUrl is { } url ? $" and {url}" : "")}, NBD on {options.NbdSocketPath}");
            await app.WaitForShutdownAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            await vms.DisposeAsync().ConfigureAwait(false);
            await nbd.DisposeAsync().ConfigureAwait(false);
            File.Delete(socket);
        }
    }
}
