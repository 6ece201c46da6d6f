using XenAoe.IntegrationTests.Infrastructure;

namespace XenAoe.IntegrationTests.DiskServer;

/// <summary>Our disk server (`xenaoe disk serve`) running in a lab host, on a pool in a temporary directory removed at the end.</summary>
public sealed class DiskServerHost : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private LabProcess? _process;

    private DiskServerHost(LabHost host, string pool)
    {
        Host = host;
        Pool = pool;
    }

    public LabHost Host { get; }
    public string Pool { get; }
    public LabProcess Process => _process ?? throw new InvalidOperationException("the disk server is not running");

    /// <summary>The CLI built beside the tests (the test project references it).</summary>
    public static string CliDll => Path.Combine(AppContext.BaseDirectory, "xenaoe.dll");

    /// <param name="parent">Directory to make the pool in: the temp directory by default; a disk-backed one where syncs must cost what a disk costs.</param>
    public static DiskServerHost Create(LabHost host, string? parent = null) =>
        new(host, parent is null
            ? Directory.CreateTempSubdirectory($"xenaoe-pool-{host.Namespace}-").FullName
            : Directory.CreateDirectory(Path.Combine(parent, $"xenaoe-pool-{host.Namespace}-{Guid.NewGuid():N}")).FullName);

    /// <summary>Runs a `xenaoe` command (outside any namespace: pool administration needs no network).</summary>
    public static Task<CommandResult> CliAsync(params string[] args) =>
        Command.RunAsync("dotnet", [CliDll, .. args], TimeSpan.FromSeconds(60));

    public async Task CreateVolumeAsync(string name, string address, string size, params string[] extra) =>
        (await CliAsync(["disk", "volume", "create", name, "--pool", Pool, "--address", address, "--size", size, .. extra])).EnsureSuccess();

    public async Task StartAsync(params string[] extra)
    {
        List<string> args = [CliDll, "disk", "serve", "--pool", Pool, .. extra];
        foreach (var nic in Host.Nics)
            args.AddRange(["--interface", nic]);
        _process = Host.Start("dotnet", [.. args]);
        await _process.WaitForOutputAsync("disk server ready", StartTimeout);
    }

    public async Task StopAsync(int signal = Signal.Terminate)
    {
        if (_process is null)
            return;
        await _process.KillAsync(signal);
        await _process.DisposeAsync();
        _process = null;
    }

    public async Task<Dictionary<string, long>> CountersAsync()
    {
        var result = (await CliAsync("disk", "counters", "--pool", Pool, "--json")).EnsureSuccess();
        return System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, long>>(result.StdOut)!;
    }

    public string VolumeFile(string name) => Path.Combine(Pool, name + ".img");

    public async ValueTask DisposeAsync()
    {
        await StopAsync(Signal.Kill);
        Directory.Delete(Pool, recursive: true);
    }
}
