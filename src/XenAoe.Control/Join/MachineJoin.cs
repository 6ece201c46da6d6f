using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using XenAoe.Agents.Configuration;
using XenAoe.Agents.Disk;
using XenAoe.Agents.Host;
using XenAoe.Control.Api;
using XenAoe.Os;

namespace XenAoe.Control.Join;

/// <summary>What <c>xenaoe join</c> is asked: the controller, the join token, and the machine's settings.</summary>
public sealed record JoinOptions
{
    /// <summary>Controller URLs (standbys too); the first that answers takes the join token, and all are written for registration.</summary>
    public required IReadOnlyList<string> Controllers { get; init; }

    public required string Token { get; init; }

    /// <summary><c>disk</c> or <c>cpu</c>.</summary>
    public required string Role { get; init; }

    /// <summary>The name it registers under; default the machine's host name.</summary>
    public string Name { get; init; } = Environment.MachineName.ToLowerInvariant();

    public required IReadOnlyList<string> Interfaces { get; init; }

    public int? StorageMtu { get; init; }

    /// <summary>The daemon's management address:port; default the address this machine reaches the controller from, port 7200 (disk) or 7300 (cpu).</summary>
    public IPEndPoint? Listen { get; init; }

    /// <summary><c>key=value</c> failure-domain labels, e.g. <c>power=circuit1</c>.</summary>
    public IReadOnlyList<string> Labels { get; init; } = [];

    /// <summary>Other keys of the role's configuration file as <c>key=value</c> (<c>--set pool=/srv/pool</c>).</summary>
    public IReadOnlyList<string> Settings { get; init; } = [];

    /// <summary>Where ROLE.conf and the token file go.</summary>
    public string ConfigDirectory { get; init; } = DaemonSettings.ConfigDirectory;

    /// <summary>Enable and start the systemd unit, then wait until the controller lists the machine.</summary>
    public bool Start { get; init; } = true;

    public TimeSpan WaitTimeout { get; init; } = TimeSpan.FromMinutes(2);
}

/// <param name="ConfigFile">The ROLE.conf written.</param>
/// <param name="ListedAfter">From the start of the join until the controller listed the machine; null when the daemon was not started.</param>
public sealed record JoinResult(string ClusterId, string ConfigFile, string TokenFile, string Unit, TimeSpan? ListedAfter);

/// <summary>
/// Joins this machine to a cluster: checks the settings as the daemon will (NICs, MTU, values), trades the join token at the
/// controller for the cluster's API token, writes <c>ROLE.conf</c> and the token file, then enables and starts the role's
/// systemd unit; the daemon registers itself at start, and the join waits until the controller lists it. A refused token or a
/// bad setting stops the join before anything is written.
/// </summary>
public static class MachineJoin
{
    public const int DiskApiPort = 7200;
    public const int HostApiPort = 7300;

    /// <summary>The keys join writes itself: <c>--set</c> may not give them.</summary>
    private static readonly string[] OwnKeys = ["name", "interfaces", "storage_mtu", "listen", "token_file", "controllers", "labels"];

    public static ConfigSchema Schema(string role) => role switch
    {
        "disk" => DiskServerOptions.Schema,
        "cpu" => HostDaemonOptions.Schema,
        _ => throw new ArgumentException($"--role must be disk or cpu, not '{role}'"),
    };

    /// <summary>The role's systemd unit: <c>xenaoe-disk.service</c> or <c>xenaoe-host.service</c>.</summary>
    public static string Unit(string role) => $"xenaoe-{Schema(role).Role}.service";

    public static async Task<JoinResult> RunAsync(JoinOptions options, TextWriter log, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var schema = Schema(options.Role);
        var listen = options.Listen ?? new IPEndPoint(LocalAddressToward(options.Controllers[0]), options.Role == "disk" ? DiskApiPort : HostApiPort);
        var tokenFile = Path.Combine(options.ConfigDirectory, "token");
        var values = Values(options, schema, listen, tokenFile);
        Check(options.Role, schema, values);

        using var controller = new ControllerClient(options.Controllers, token: null, TimeSpan.FromSeconds(30));
        var joined = await controller.JoinAsync(new JoinRequest(options.Token, options.Role, options.Name), ct).ConfigureAwait(false);
        log.WriteLine($"join token accepted: cluster {joined.ClusterId}");

        Directory.CreateDirectory(options.ConfigDirectory);
        await WriteTokenAsync(tokenFile, joined.ClusterToken, ct).ConfigureAwait(false);
        var configFile = Path.Combine(options.ConfigDirectory, schema.Role + ".conf");
        WriteAtomically(configFile, Render(schema, values, joined.ClusterId, options.Controllers), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        log.WriteLine($"wrote {configFile} and {tokenFile}");

        var unit = Unit(options.Role);
        if (!options.Start)
            return new JoinResult(joined.ClusterId, configFile, tokenFile, unit, null);
        if (!Directory.Exists("/run/systemd/system"))
        {
            log.WriteLine($"no systemd here: run `xenaoe {schema.Role} serve` (it reads {configFile}) and it registers itself");
            return new JoinResult(joined.ClusterId, configFile, tokenFile, unit, null);
        }
        (await Command.RunAsync("systemctl", ["enable", unit], ct: ct).ConfigureAwait(false)).EnsureSuccess();
        // restart, not start: a machine joining again must read its new configuration.
        (await Command.RunAsync("systemctl", ["restart", unit], ct: ct).ConfigureAwait(false)).EnsureSuccess();
        log.WriteLine($"{unit} enabled and started; waiting for {options.Name} to register");
        using var cluster = new ControllerClient(options.Controllers, joined.ClusterToken, TimeSpan.FromSeconds(30));
        await WaitUntilListedAsync(cluster, options.Role, options.Name, joined.At, options.WaitTimeout, ct).ConfigureAwait(false);
        return new JoinResult(joined.ClusterId, configFile, tokenFile, unit, clock.Elapsed);
    }

    /// <summary>Waits until the controller lists <paramref name="name"/> registered at or after <paramref name="since"/> (the controller's clock).</summary>
    /// <exception cref="TimeoutException">Not listed within <paramref name="timeout"/>; says where to look.</exception>
    public static async Task WaitUntilListedAsync(ControllerClient client, string role, string name, DateTimeOffset since, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (await IsListedAsync(client, role, name, since, ct).ConfigureAwait(false))
                return;
            if (deadline.Elapsed > timeout)
                throw new TimeoutException($"{name} did not register within {timeout.TotalSeconds:0} s: see `journalctl -u {Unit(role)}`");
            await Task.Delay(TimeSpan.FromMilliseconds(100), ct).ConfigureAwait(false);
        }
    }

    /// <summary>True when the controller lists <paramref name="name"/> registered at or after <paramref name="since"/>.</summary>
    public static async Task<bool> IsListedAsync(ControllerClient client, string role, string name, DateTimeOffset since, CancellationToken ct)
    {
        var registered = role == "disk"
            ? (await client.DiskServersAsync(ct).ConfigureAwait(false)).FirstOrDefault(d => d.Name == name)?.RegisteredAt
            : (await client.HostsAsync(ct).ConfigureAwait(false)).FirstOrDefault(h => h.Name == name)?.RegisteredAt;
        return registered >= since;
    }

    /// <summary>The keys to write, in the schema's order.</summary>
    private static Dictionary<string, string> Values(JoinOptions options, ConfigSchema schema, IPEndPoint listen, string tokenFile)
    {
        if (listen.Address.Equals(IPAddress.Any) || listen.Address.Equals(IPAddress.IPv6Any))
            throw new ArgumentException("--listen needs the management address itself (the controller calls the daemon there), not a wildcard");
        var given = new Dictionary<string, string>
        {
            ["name"] = options.Name,
            ["interfaces"] = string.Join(' ', options.Interfaces),
            ["listen"] = listen.ToString(),
            ["token_file"] = Path.GetFullPath(tokenFile),
            ["controllers"] = string.Join(' ', options.Controllers),
        };
        if (options.StorageMtu is { } mtu)
            given["storage_mtu"] = mtu.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (options.Labels.Count > 0)
            given["labels"] = string.Join(' ', options.Labels);
        foreach (var setting in options.Settings)
        {
            if (setting.Split('=', 2) is not [var key, var value])
                throw new ArgumentException($"--set '{setting}': give key=value, e.g. --set spin_us=0");
            if (OwnKeys.Contains(key))
                throw new ArgumentException($"--set {key}: join sets {key} itself (use its own option)");
            if (!schema.Keys.Any(k => k.Name == key))
                throw new ArgumentException($"--set {key}: not a key of {schema.Role}.conf (it has {string.Join(", ", schema.Keys.Select(k => k.Name).Except(OwnKeys))})");
            given[key] = value;
        }
        return schema.Keys.Where(k => given.ContainsKey(k.Name)).ToDictionary(k => k.Name, k => given[k.Name]);
    }

    /// <summary>
    /// The settings as the daemon will read them, minus the token (it does not exist yet): a NIC missing here, an MTU too low or
    /// a malformed value stops the join with the daemon's own message, before the token is spent or anything written.
    /// </summary>
    private static void Check(string role, ConfigSchema schema, Dictionary<string, string> values)
    {
        var settings = DaemonSettings.Load(schema, "/dev/null",
            values.Where(v => v.Key is not ("listen" or "token_file" or "controllers")).ToDictionary(v => v.Key, v => (string?)v.Value));
        if (role == "disk")
            _ = DiskServerOptions.From(settings);
        else
            _ = HostDaemonOptions.From(settings);
    }

    private static string Render(ConfigSchema schema, Dictionary<string, string> values, string clusterId, IReadOnlyList<string> controllers)
    {
        var text = new StringBuilder();
        text.Append("# Written by `xenaoe join` for cluster ").Append(clusterId).Append(" (controller ").Append(controllers[0]).Append(").\n");
        foreach (var (key, value) in values)
            text.Append(key).Append(" = ").Append(value).Append('\n');
        text.Append('\n').Append(schema.Example());
        return text.ToString();
    }

    /// <summary>
    /// The cluster's token, owner-only; readable by group <c>xenaoe</c> too when the package created it, since the units run as
    /// that user.
    /// </summary>
    private static async Task WriteTokenAsync(string path, string token, CancellationToken ct)
    {
        if (!OperatingSystem.IsLinux())
            throw new PlatformNotSupportedException("xenaoe join runs on Linux");
        var group = File.Exists("/etc/group") && File.ReadLines("/etc/group").Any(l => l.StartsWith("xenaoe:", StringComparison.Ordinal));
        WriteAtomically(path, token + "\n", UnixFileMode.UserRead | UnixFileMode.UserWrite);
        if (!group)
            return;
        (await Command.RunAsync("chgrp", ["xenaoe", path], ct: ct).ConfigureAwait(false)).EnsureSuccess();
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
    }

    /// <summary>Written beside and renamed over: a reader sees the old file or the new one, never half of it.</summary>
    private static void WriteAtomically(string path, string text, UnixFileMode mode)
    {
        if (!OperatingSystem.IsLinux())
            throw new PlatformNotSupportedException("xenaoe join runs on Linux");
        var temporary = path + ".new";
        File.Delete(temporary);
        using (var file = new FileStream(temporary, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = mode }))
        using (var writer = new StreamWriter(file))
            writer.Write(text);
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>The local address the kernel would send from to reach the controller: the management address, on any machine.</summary>
    private static IPAddress LocalAddressToward(string controllerUrl)
    {
        if (!Uri.TryCreate(controllerUrl, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp)
            throw new ArgumentException($"--controller '{controllerUrl}' is not an http:// URL such as http://10.0.0.1:7400");
        var address = IPAddress.TryParse(uri.Host, out var literal) ? literal : Dns.GetHostAddresses(uri.Host).First();
        using var socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        // A UDP connect sends nothing: it only chooses the route and with it the source address.
        socket.Connect(address, uri.Port);
        return ((IPEndPoint)socket.LocalEndPoint!).Address;
    }
}
