using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using XenAoe.IntegrationTests.DataPath;
using XenAoe.IntegrationTests.DiskServer;
using Xunit.Abstractions;

namespace XenAoe.IntegrationTests.Lab;

/// <summary>
/// The tests that build whole labs run one at a time: each lab runs a TCG guest and seven daemons, and two or three of them at
/// once on two cores starve the guests (a full suite saw a migrated guest miss its HTTP answers for 30 s that way).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class WholeLabCollection
{
    public const string Name = "whole labs";
}

/// <summary>
/// A whole lab made through the CLI for one test, as a user makes it: its own namespace prefix and state folder (so tests and
/// a real lab never meet), the CLI run with it as the default lab, vm1's counter read over HTTP from the admin station.
/// Disposal runs <c>xenaoe lab down</c> and deletes the state folder, whatever the test did.
/// </summary>
internal sealed class CliLab : IAsyncDisposable
{
    public const string VmUrl = "http://10.77.1.41/counter";
    private static readonly TimeSpan UpTimeout = TimeSpan.FromMinutes(8);
    private static readonly TimeSpan CliTimeout = TimeSpan.FromSeconds(90);
    private readonly HttpClient _http;

    /// <param name="letters">Two letters starting the namespace prefix, naming the test class in `ip netns list`.</param>
    public CliLab(string letters)
    {
        Prefix = letters + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))[..5];
        State = Directory.CreateTempSubdirectory($"xenaoe-lab-{letters}-").FullName;
        _http = XenAoe.Os.NamespaceHttp.Create(Prefix + "-sw", TimeSpan.FromSeconds(2));
    }

    public string Prefix { get; }

    public string State { get; }

    /// <summary><c>xenaoe lab up</c> with this lab's prefix and state folder; its output goes to the test's log.</summary>
    public async Task<CommandResult> UpAsync(ITestOutputHelper output, params string[] extra)
    {
        var up = await CliAsync(UpTimeout, ["lab", "up", "--prefix", Prefix, "--state-dir", State, .. extra]);
        output.WriteLine(up.StdOut);
        return up.EnsureSuccess();
    }

    public Task<CommandResult> CliAsync(params string[] args) => CliAsync(CliTimeout, args);

    /// <summary>Writes the last lines of the named daemons' logs (logs/NAME.log) to the test's output: the lab and its logs are
    /// removed when the test ends, so a failure must say what the daemons said before that.</summary>
    public void WriteLogTails(ITestOutputHelper output, params string[] names)
    {
        foreach (var name in names)
        {
            var path = Path.Combine(State, "logs", name + ".log");
            output.WriteLine($"--- {path} (last 40 lines)");
            output.WriteLine(File.Exists(path) ? string.Join('\n', File.ReadLines(path).TakeLast(40)) : "(no such log)");
        }
    }

    /// <summary>Runs the CLI with this lab as the default one, typing <paramref name="input"/> on its stdin when given.</summary>
    public Task<CommandResult> CliAsync(TimeSpan timeout, string[] args, string? input = null)
    {
        // bash supplies the input through a pipe (the command runner closes stdin) and the environment naming this lab.
        const string Script = "printf '%s' \"$1\" | XENAOE_LAB=\"$2\" dotnet \"$3\" \"${@:4}\"";
        return Command.RunAsync("bash", ["-c", Script, "bash", input ?? "", State, DiskServerHost.CliDll, .. args], timeout);
    }

    /// <summary>vm1's counter as its HTTP service gives it; null when it does not answer.</summary>
    public async Task<long?> CounterAsync()
    {
        try
        {
            return long.Parse((await _http.GetStringAsync(VmUrl)).Trim(), CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or FormatException)
        {
            return null;
        }
    }

    /// <summary>vm1's counter once it has reached <paramref name="atLeast"/>.</summary>
    public async Task<long> CounterAfterAsync(long atLeast)
    {
        long value = -1;
        await Eventually.TrueAsync(async () => (value = await CounterAsync() ?? -1) >= atLeast, TimeSpan.FromSeconds(60), $"vm1's counter to reach {atLeast}");
        return value;
    }

    /// <summary>vm1's <c>/cgi-bin/status</c>: counter, boot, uptime, hostname and the disk write errors its guest counted.</summary>
    public async Task<JsonDocument> GuestStatusAsync() =>
        JsonDocument.Parse(await _http.GetStringAsync(VmUrl.Replace("/counter", "/cgi-bin/status", StringComparison.Ordinal)));

    /// <summary>How many times vm1's guest has booted from its disk: a live migration that crashed the guest shows as one more.</summary>
    public async Task<long> GuestBootsAsync()
    {
        using var status = await GuestStatusAsync();
        return status.RootElement.GetProperty("boot").GetInt64();
    }

    /// <summary>
    /// Stops vm1, then checks its disk as a careful admin would: both legs hold the same bytes, the file system checks clean
    /// and the counter on disk is at least <paramref name="served"/>, the last value the guest served.
    /// </summary>
    public async Task StopAndCheckDiskAsync(ITestOutputHelper output, long served)
    {
        (await CliAsync("vm", "stop", "vm1")).EnsureSuccess();
        var leg1 = Path.Combine(PoolOf("disk1"), "vm1-root.img");
        var leg2 = Path.Combine(PoolOf("disk2"), "vm1-root.img");
        Assert.True(MirrorLab.DataOf(leg1, 64 << 20).AsSpan().SequenceEqual(MirrorLab.DataOf(leg2, 64 << 20)), "both legs hold the same file system");
        var image = Path.Combine(State, "root-copy.img");
        await File.WriteAllBytesAsync(image, MirrorLab.DataOf(leg1, 64 << 20));
        var fsck = await Command.RunAsync("e2fsck", "-fn", image);
        output.WriteLine(fsck.StdOut);
        Assert.True(fsck.ExitCode == 0, $"e2fsck found problems:\n{fsck.StdOut}{fsck.StdErr}");
        var counter = await Command.RunAsync("debugfs", "-R", "cat /var/lib/xenaoe/counter", image);
        Assert.True(long.Parse(counter.StdOut.Trim(), CultureInfo.InvariantCulture) >= served, $"the counter on disk ({counter.StdOut.Trim()}) is at least the last one served ({served})");
    }

    public string PoolOf(string disk) => Path.Combine(State, "pools", disk);

    public string HostSocket(string host) => Path.Combine(State, "hosts", host, "host.sock");

    /// <summary>The pid of a daemon the lab started (disk1, cpu2, controller1, ...), from <c>xenaoe lab status</c>.</summary>
    public async Task<int> DaemonPidAsync(string name)
    {
        using var status = JsonDocument.Parse((await CliAsync("lab", "status", "--state-dir", State, "--json")).EnsureSuccess().StdOut);
        return status.RootElement.GetProperty("processes").EnumerateArray().Single(p => p.GetProperty("name").GetString() == name).GetProperty("pid").GetInt32();
    }

    /// <summary>Signals every process in a lab server's namespace; returns their pids.</summary>
    public int[] SignalNamespace(string server, int signal)
    {
        var pids = PidsIn(server);
        Assert.NotEmpty(pids);
        foreach (var pid in pids)
            XenAoe.Os.Signal.Send(pid, signal);
        return pids;
    }

    /// <summary>The QEMU processes of <paramref name="vm"/> in a lab server's namespace (by their <c>-name</c>).</summary>
    public int QemusOf(string server, string vm) => PidsIn(server).Count(pid =>
    {
        try
        {
            var argv = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0');
            return argv[0].Contains("qemu", StringComparison.Ordinal) && argv.Zip(argv.Skip(1)).Any(a => a.First == "-name" && a.Second.StartsWith($"guest={vm},", StringComparison.Ordinal));
        }
        catch (IOException)
        {
            // Exited meanwhile.
            return false;
        }
    });

    /// <summary>The lab's controllers (or the one at <paramref name="url"/>) as the CLI reaches them, inside the admin namespace; a short timeout for tight polling.</summary>
    public XenAoe.Control.Api.ControllerClient Controllers(string? url = null)
    {
        var file = XenAoe.Lab.Cluster.LabControllers.FileIn(State);
        var lab = JsonSerializer.Deserialize(File.ReadAllText(file), XenAoe.Lab.Cluster.LabControllersJsonContext.Default.LabControllers)!;
        return new XenAoe.Control.Api.ControllerClient(url is null ? lab.Urls : [url], File.ReadAllText(lab.TokenFile).Trim(), TimeSpan.FromSeconds(5), lab.Namespace);
    }

    private int[] PidsIn(string server) =>
        Command.RunAsync("ip", "netns", "pids", $"{Prefix}-{server}").GetAwaiter().GetResult().EnsureSuccess().StdOut
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray();

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        await Command.RunAsync("dotnet", [DiskServerHost.CliDll, "lab", "down", "--state-dir", State], TimeSpan.FromMinutes(2));
        Directory.Delete(State, recursive: true);
    }
}
