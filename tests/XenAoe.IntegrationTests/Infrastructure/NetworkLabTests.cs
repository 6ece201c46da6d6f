using System.Diagnostics;
using System.Text.Json;

namespace XenAoe.IntegrationTests.Infrastructure;

[Trait("Category", "Integration")]
public sealed class NetworkLabTests
{
    [Fact]
    public async Task A_lab_gives_each_host_one_NIC_per_switch_at_its_MTU_and_disposal_removes_its_namespaces_and_processes()
    {
        var lab = await NetworkLab.CreateAsync(switches: 2, mtu: 9000);
        LabProcess sleeper;
        string[] namespaces;
        try
        {
            Assert.Matches("^xt[0-9a-f]{5}$", lab.Prefix);
            var a = await lab.AddHostAsync("a");
            var b = await lab.AddHostAsync("b", mtu: 1500);
            namespaces = [lab.SwitchNamespace, a.Namespace, b.Namespace];
            Assert.Equal($"{lab.Prefix}-a", a.Namespace);
            Assert.Equal(["eth0", "eth1"], a.Nics);
            Assert.Subset(ListNamespaces().ToHashSet(), namespaces.ToHashSet());

            Assert.Equal(9000, await MtuAsync(a.Namespace, "eth1"));
            Assert.Equal(1500, await MtuAsync(b.Namespace, "eth0"));
            // The bridge keeps the MTU it was given even with a 1500-byte port on it.
            Assert.Equal(9000, await MtuAsync(lab.SwitchNamespace, "br1"));
            Assert.Equal("br1", await MasterAsync(lab.SwitchNamespace, "b-1"));

            var links = (await a.RunAsync("ip", "-j", "link", "show")).EnsureSuccess().StdOut;
            Assert.Contains("\"eth1\"", links);
            Assert.Matches("^([0-9a-f]{2}:){5}[0-9a-f]{2}$", await a.MacAsync("eth0"));

            sleeper = a.Start("sleep", "600");
            await Eventually.TrueAsync(async () => (await a.RunAsync("cat", $"/proc/{sleeper.Pid}/comm")).StdOut.Trim() == "sleep",
                TimeSpan.FromSeconds(5), $"pid {sleeper.Pid} to be `sleep` inside {a.Namespace}");
        }
        finally
        {
            await lab.DisposeAsync();
        }

        Assert.True(sleeper.HasExited, $"{sleeper} still runs after the lab was disposed");
        Assert.Empty(ListNamespaces().Intersect(namespaces));
    }

    [Fact]
    public async Task A_TAP_device_is_created_in_the_switch_namespace_at_the_lab_MTU_and_attached_to_its_bridge()
    {
        await using var lab = await NetworkLab.CreateAsync(switches: 2, mtu: 9000);
        var tap0 = await lab.AddTapAsync();
        var tap1 = await lab.AddTapAsync(switchIndex: 1);
        Assert.NotEqual(tap0, tap1);
        Assert.InRange(tap1.Length, 1, 15);
        Assert.Equal("br0", await MasterAsync(lab.SwitchNamespace, tap0));
        Assert.Equal("br1", await MasterAsync(lab.SwitchNamespace, tap1));
        Assert.Equal(9000, await MtuAsync(lab.SwitchNamespace, tap1));
        var details = (await lab.RunInSwitchAsync("ip", "-d", "link", "show", "dev", tap0)).EnsureSuccess().StdOut;
        Assert.Contains("tun type tap", details);
    }

    [Fact]
    public async Task A_command_that_outlives_its_timeout_is_killed_with_its_children_and_the_error_says_so()
    {
        var clock = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<TimeoutException>(() =>
            Command.RunAsync("sh", ["-c", "echo started; sleep 30 & sleep 30"], TimeSpan.FromMilliseconds(500)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"took {clock.Elapsed}");
        Assert.Contains("did not finish within 0.5 s", error.Message);
        Assert.Contains("killed", error.Message);
        Assert.Contains("started", error.Message);
    }

    [Fact]
    public async Task EnsureSuccess_throws_with_the_command_line_and_both_outputs()
    {
        var result = await Command.RunAsync("sh", ["-c", "echo to-out; echo to-err >&2; exit 3"]);
        Assert.Equal(3, result.ExitCode);
        var error = Assert.Throws<CommandFailedException>(() => result.EnsureSuccess());
        Assert.Contains("sh -c", error.Message);
        Assert.Contains("exited with 3", error.Message);
        Assert.Contains("to-out", error.Message);
        Assert.Contains("to-err", error.Message);
    }

    [Fact]
    public async Task Waiting_for_output_ends_early_when_the_process_exits_without_printing_it()
    {
        await using var lab = await NetworkLab.CreateAsync();
        var a = await lab.AddHostAsync("a");
        await using var found = a.Start("sh", "-c", "printf 'partial line without newline'; sleep 600");
        await found.WaitForOutputAsync("without newline", TimeSpan.FromSeconds(10));

        await using var quitter = a.Start("sh", "-c", "echo something else; exit 4");
        var clock = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => quitter.WaitForOutputAsync("READY", TimeSpan.FromSeconds(30)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
        Assert.Contains("READY", error.Message);
        Assert.Contains("something else", error.Message);
        Assert.Contains("exited with 4", error.Message);

        await found.KillAsync(Signal.Terminate);
        Assert.True(found.HasExited);
    }

    [Fact]
    public async Task Killing_a_lab_process_also_kills_the_children_it_leaves_behind()
    {
        await using var lab = await NetworkLab.CreateAsync();
        var a = await lab.AddHostAsync("a");
        await using var parent = a.Start("sh", "-c", "sleep 600 & echo \"child $!\"; wait");
        await parent.WaitForOutputAsync("child ", TimeSpan.FromSeconds(10));
        var childPid = int.Parse(parent.Output.Split("child ")[1].Split('\n')[0].Trim(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(IsAlive(childPid), $"child {childPid} is not running");

        // SIGTERM ends sh but not its background child; the lab kills the child through the process group.
        await parent.KillAsync(Signal.Terminate);
        await Eventually.TrueAsync(() => !IsAlive(childPid), TimeSpan.FromSeconds(5), $"the orphaned child {childPid} of {parent} to be killed");
    }

    [Fact]
    public async Task Eventually_says_what_was_expected_when_the_deadline_passes()
    {
        var error = await Assert.ThrowsAsync<TimeoutException>(() =>
            Eventually.TrueAsync(() => false, TimeSpan.FromMilliseconds(200), "the moon to be made of cheese"));
        Assert.Contains("Expected within 0.2 s: the moon to be made of cheese", error.Message);
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            // Field 3 of /proc/PID/stat is the state; a zombie waits only for its reaper.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..][0] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static string[] ListNamespaces() =>
        Command.RunAsync("ip", "netns", "list").GetAwaiter().GetResult().EnsureSuccess().StdOut
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' ')[0])
            .ToArray();

    private static async Task<JsonElement> LinkAsync(string ns, string device)
    {
        var text = (await Command.RunAsync("ip", "-n", ns, "-j", "link", "show", "dev", device)).EnsureSuccess().StdOut;
        return JsonDocument.Parse(text).RootElement[0].Clone();
    }

    private static async Task<int> MtuAsync(string ns, string device) => (await LinkAsync(ns, device)).GetProperty("mtu").GetInt32();

    private static async Task<string?> MasterAsync(string ns, string device) =>
        (await LinkAsync(ns, device)).TryGetProperty("master", out var master) ? master.GetString() : null;
}
