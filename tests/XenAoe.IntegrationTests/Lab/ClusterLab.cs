using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using XenAoe.Lab.Cluster;

namespace XenAoe.IntegrationTests.Lab;

/// <summary>
/// A lab built by <see cref="LabNetwork.UpAsync"/> under a random prefix ("xl" + 5 hex digits) and a temp state directory,
/// so it never meets a real lab ("xa") or another test's. Disposal runs <see cref="LabNetwork.DownAsync"/> and removes
/// the state directory.
/// </summary>
internal sealed class ClusterLab : IAsyncDisposable
{
    private ClusterLab(LabPlan plan) => Plan = plan;

    public LabPlan Plan { get; }

    public string StateDirectory => Plan.StateDirectory;

    public List<LabProgress> Progress { get; } = [];

    public static LabPlan NewPlan(int disks, int cpus)
    {
        Root.Require();
        var prefix = "xl" + RandomNumberGenerator.GetHexString(5, lowercase: true);
        return new LabPlan
        {
            Prefix = prefix,
            DiskServers = disks,
            CpuServers = cpus,
            StateDirectory = Path.Combine(Path.GetTempPath(), $"xenaoe-lab-{prefix}"),
        };
    }

    public static async Task<ClusterLab> UpAsync(int disks = 2, int cpus = 2)
    {
        var lab = new ClusterLab(NewPlan(disks, cpus));
        try
        {
            // Progress<T> posts to the thread pool; a plain IProgress records in order.
            await LabNetwork.UpAsync(lab.Plan, new SyncProgress(lab.Progress));
        }
        catch
        {
            await lab.DisposeAsync();
            throw;
        }
        return lab;
    }

    public string Ns(LabRole role, int number) => Plan.NamespaceOf(new LabServer(role, number));

    public Task<CommandResult> RunInAsync(string ns, string file, params string[] args) =>
        Command.RunAsync("ip", ["netns", "exec", ns, file, .. args]);

    public async Task<JsonElement> LinkAsync(string ns, string device)
    {
        var text = (await Command.RunAsync("ip", ["-n", ns, "-d", "-j", "addr", "show", "dev", device])).EnsureSuccess().StdOut;
        using var json = JsonDocument.Parse(text);
        return json.RootElement[0].Clone();
    }

    public async Task<IReadOnlyList<string>> NamespacesWithPrefixAsync() =>
        [.. (await LabNetwork.ListNamespacesAsync()).Where(n => n.StartsWith(Plan.Prefix + "-", StringComparison.Ordinal))];

    /// <summary>Starts `setsid FILE ARGS` outside the lab (the test's namespace), detached, and returns its pid.</summary>
    public static int StartOutside(string file, params string[] args)
    {
        var info = new ProcessStartInfo("setsid") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add(file);
        foreach (var arg in args)
            info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        return process.Id;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            var report = await LabNetwork.DownAsync(StateDirectory, prefix: Plan.Prefix);
            if (!report.Succeeded)
                Console.Error.WriteLine($"Lab {Plan.Prefix} clean-up problems:\n{string.Join('\n', report.Problems)}");
        }
        finally
        {
            if (Directory.Exists(StateDirectory))
                Directory.Delete(StateDirectory, recursive: true);
        }
    }

    private sealed class SyncProgress(List<LabProgress> steps) : IProgress<LabProgress>
    {
        public void Report(LabProgress value)
        {
            lock (steps)
                steps.Add(value);
        }
    }
}
