using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace XenAoe.IntegrationTests.Infrastructure;

/// <summary>
/// One test's network, built from namespaces: "&lt;prefix&gt;-sw" holds the switches (bridges br0..brN-1, STP off,
/// forward delay 0), and each host is a namespace "&lt;prefix&gt;-&lt;name&gt;" with one veth NIC per switch (eth0, eth1, ...).
/// The prefix ("xt" + 5 random hex digits) is unique per lab, so labs of tests running in parallel never meet, and
/// clean-up is by name: disposal kills the processes started through the lab (by pid, process tree) and deletes
/// exactly the namespaces it made.
/// </summary>
public sealed partial class NetworkLab : IAsyncDisposable
{
    /// <summary>Longest host name: a switch-side port is "&lt;name&gt;-&lt;switch&gt;" and interface names have at most 15 characters.</summary>
    public const int MaxHostNameLength = 12;

    public const int MaxSwitches = 10;

    private static readonly TimeSpan s_linkTimeout = TimeSpan.FromSeconds(10);
    private static readonly HashSet<NetworkLab> s_live = [];

    private readonly List<string> _namespaces = [];
    private readonly List<LabHost> _hosts = [];
    private readonly List<LabProcess> _processes = [];
    private readonly Lock _lock = new();
    private int _taps;
    private int _disposed;

    static NetworkLab()
    {
        // A test run that ends without disposing its labs (a crash, Ctrl-C) still removes what they made.
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            NetworkLab[] live;
            lock (s_live)
                live = [.. s_live];
            foreach (var lab in live)
                lab.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(20));
        };
    }

    private NetworkLab(string prefix, int switches, int mtu)
    {
        Prefix = prefix;
        Switches = switches;
        Mtu = mtu;
        SwitchNamespace = $"{prefix}-sw";
    }

    /// <summary>"xt" + 5 hex digits; every namespace of the lab starts with it and a dash.</summary>
    public string Prefix { get; }

    /// <summary>The namespace holding the bridges (and TAP devices); run QEMU here.</summary>
    public string SwitchNamespace { get; }

    public int Switches { get; }

    /// <summary>MTU of the bridges and, unless a host overrides it, of every link.</summary>
    public int Mtu { get; }

    public IReadOnlyList<LabHost> Hosts
    {
        get
        {
            lock (_lock)
                return [.. _hosts];
        }
    }

    /// <summary>Creates the switch namespace with <paramref name="switches"/> bridges at <paramref name="mtu"/>.</summary>
    /// <exception cref="InvalidOperationException">Not root or no `ip netns` (see <see cref="Root"/>).</exception>
    public static async Task<NetworkLab> CreateAsync(int switches = 1, int mtu = 9000)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(switches, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(switches, MaxSwitches);
        ArgumentOutOfRangeException.ThrowIfLessThan(mtu, 68);
        Root.Require();

        for (var attempt = 0; ; attempt++)
        {
            var lab = new NetworkLab("xt" + RandomNumberGenerator.GetHexString(5, lowercase: true), switches, mtu);
            var created = await Command.RunAsync("ip", ["netns", "add", lab.SwitchNamespace]).ConfigureAwait(false);
            if (created.ExitCode != 0)
            {
                // Another lab drew the same prefix (1 in a million): draw again.
                if (attempt < 3 && created.StdErr.Contains("exists", StringComparison.OrdinalIgnoreCase))
                    continue;
                created.EnsureSuccess();
            }
            lab.Track(lab.SwitchNamespace);
            try
            {
                await lab.Ip("-n", lab.SwitchNamespace, "link", "set", "lo", "up").ConfigureAwait(false);
                for (var i = 0; i < switches; i++)
                {
                    await lab.Ip("-n", lab.SwitchNamespace, "link", "add", $"br{i}", "type", "bridge", "stp_state", "0", "forward_delay", "0").ConfigureAwait(false);
                    await lab.Ip("-n", lab.SwitchNamespace, "link", "set", $"br{i}", "mtu", $"{mtu}", "up").ConfigureAwait(false);
                }
            }
            catch
            {
                await lab.DisposeAsync().ConfigureAwait(false);
                throw;
            }
            return lab;
        }
    }

    /// <summary>
    /// Adds host namespace "&lt;prefix&gt;-&lt;name&gt;" with NICs eth0..eth{switches-1}, ethI plugged into brI, all up, lo up.
    /// <paramref name="mtu"/> overrides the lab MTU on this host's links (both veth ends), to build MTU-mismatch tests.
    /// Returns when every NIC has carrier and its switch port forwards.
    /// </summary>
    /// <param name="name">Lower-case letters and digits, starting with a letter, at most 12 characters; unique in the lab.</param>
    public async Task<LabHost> AddHostAsync(string name, int? mtu = null)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (!HostName().IsMatch(name) || name.Length > MaxHostNameLength || name == "sw")
            throw new ArgumentException($"Host name '{name}' must be [a-z][a-z0-9]* of at most {MaxHostNameLength} characters and not 'sw'.", nameof(name));
        var linkMtu = mtu ?? Mtu;
        ArgumentOutOfRangeException.ThrowIfLessThan(linkMtu, 68, nameof(mtu));
        var ns = $"{Prefix}-{name}";
        lock (_lock)
        {
            if (_hosts.Any(h => h.Name == name))
                throw new ArgumentException($"The lab already has a host named '{name}'.", nameof(name));
        }

        await Ip("netns", "add", ns).ConfigureAwait(false);
        Track(ns);
        await Ip("-n", ns, "link", "set", "lo", "up").ConfigureAwait(false);
        var nics = new List<string>();
        for (var i = 0; i < Switches; i++)
        {
            var nic = $"eth{i}";
            var port = SwitchPort(name, i);
            await Ip("-n", SwitchNamespace, "link", "add", port, "mtu", $"{linkMtu}", "type", "veth", "peer", "name", nic, "mtu", $"{linkMtu}", "netns", ns).ConfigureAwait(false);
            await Ip("-n", SwitchNamespace, "link", "set", port, "master", $"br{i}", "up").ConfigureAwait(false);
            await Ip("-n", ns, "link", "set", nic, "up").ConfigureAwait(false);
            nics.Add(nic);
        }
        var host = new LabHost(this, name, ns, nics, linkMtu);
        lock (_lock)
            _hosts.Add(host);

        for (var i = 0; i < Switches; i++)
            await WaitForwardingAsync(SwitchPort(name, i), $"{ns} eth{i}").ConfigureAwait(false);
        return host;
    }

    /// <summary>
    /// Creates a TAP device in the switch namespace at the lab MTU, attached to br<paramref name="switchIndex"/> and up,
    /// and returns its name (at most 15 characters). QEMU must run inside <see cref="SwitchNamespace"/> to open it
    /// (see <see cref="StartInSwitch"/>); until then it has no carrier.
    /// </summary>
    public async Task<string> AddTapAsync(int switchIndex = 0)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        ArgumentOutOfRangeException.ThrowIfNegative(switchIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(switchIndex, Switches);
        var name = $"tap{Interlocked.Increment(ref _taps) - 1}";
        await Ip("-n", SwitchNamespace, "tuntap", "add", "dev", name, "mode", "tap").ConfigureAwait(false);
        await Ip("-n", SwitchNamespace, "link", "set", name, "mtu", $"{Mtu}", "master", $"br{switchIndex}", "up").ConfigureAwait(false);
        return name;
    }

    /// <summary>Runs a command inside the switch namespace (60 s timeout).</summary>
    public Task<CommandResult> RunInSwitchAsync(string file, params string[] args) =>
        Command.RunAsync("ip", ["netns", "exec", SwitchNamespace, file, .. args]);

    /// <summary>Starts a long-running process inside the switch namespace (where TAP devices live, so QEMU goes here).</summary>
    public LabProcess StartInSwitch(string file, params string[] args) => StartIn(SwitchNamespace, file, args);

    /// <summary>The MAC of a switch-side interface (a port or TAP), as "aa:bb:cc:dd:ee:ff".</summary>
    public Task<string> SwitchMacAsync(string device) => ReadMacAsync(SwitchNamespace, device);

    /// <summary>
    /// Kills every process started through the lab (process tree, by pid), then deletes every namespace it made
    /// (`ip netns del`; their veths, bridges and TAPs go with them). Never kills or deletes by a broad name.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        LabProcess[] processes;
        string[] namespaces;
        lock (_lock)
        {
            processes = [.. _processes];
            // Hosts before the switch namespace, newest first.
            namespaces = [.. Enumerable.Reverse(_namespaces)];
        }
        var failures = new List<string>();
        await Task.WhenAll(processes.Select(async p =>
        {
            try
            {
                await p.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception e)
            {
                lock (failures)
                    failures.Add($"{p}: {e.Message}");
            }
        })).ConfigureAwait(false);

        foreach (var ns in namespaces)
        {
            var result = await Command.RunAsync("ip", ["netns", "del", ns], TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            if (result.ExitCode != 0 && File.Exists($"/run/netns/{ns}"))
                failures.Add(result.ToString());
        }
        lock (s_live)
            s_live.Remove(this);
        // Clean-up failures are reported without throwing, so they never hide the failure of the test being cleaned up.
        if (failures.Count > 0)
            Console.Error.WriteLine($"NetworkLab {Prefix} clean-up problems:\n{string.Join('\n', failures)}");
    }

    public override string ToString() => $"NetworkLab {Prefix} ({Switches} switch(es), MTU {Mtu})";

    internal LabProcess StartIn(string ns, string file, IReadOnlyList<string> args)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var process = new LabProcess("ip", ["netns", "exec", ns, file, .. args], $"{Path.GetFileName(file)} in {ns}");
        lock (_lock)
            _processes.Add(process);
        return process;
    }

    internal static async Task<string> ReadMacAsync(string ns, string device)
    {
        var text = (await Command.RunAsync("ip", ["-n", ns, "-j", "link", "show", "dev", device]).ConfigureAwait(false)).EnsureSuccess().StdOut;
        using var json = JsonDocument.Parse(text);
        return json.RootElement[0].GetProperty("address").GetString()
            ?? throw new InvalidOperationException($"{device} in {ns} has no address: {text}");
    }

    private static string SwitchPort(string host, int index) => $"{host}-{index}";

    private void Track(string ns)
    {
        lock (_lock)
            _namespaces.Add(ns);
        lock (s_live)
            s_live.Add(this);
    }

    private Task<CommandResult> Ip(params string[] args) => IpAsync(args);

    private static async Task<CommandResult> IpAsync(string[] args) =>
        (await Command.RunAsync("ip", args, TimeSpan.FromSeconds(30)).ConfigureAwait(false)).EnsureSuccess();

    private Task WaitForwardingAsync(string port, string what) =>
        Eventually.TrueAsync(async () =>
        {
            var result = await Command.RunAsync("bridge", ["-n", SwitchNamespace, "-j", "link", "show", "dev", port]).ConfigureAwait(false);
            if (result.ExitCode != 0)
                return false;
            using var json = JsonDocument.Parse(result.StdOut);
            return json.RootElement.GetArrayLength() > 0
                && json.RootElement[0].TryGetProperty("state", out var state) && state.GetString() == "forwarding";
        }, s_linkTimeout, $"the switch port {port} of {what} to be forwarding");

    [GeneratedRegex("^[a-z][a-z0-9]*$")]
    private static partial Regex HostName();
}
