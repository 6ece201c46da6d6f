using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Text.Json;
using XenAoe.Control.Api;
using XenAoe.Control.Join;

namespace XenAoe.Cli;

/// <summary><c>xenaoe cluster ...</c> (identity and join tokens, on the controller) and <c>xenaoe join</c> (on each machine).</summary>
internal static class ClusterCommands
{
    private static readonly Option<bool> Json = new("--json") { Description = "Print JSON instead of text" };

    private static readonly Option<string> Ttl = new("--ttl")
    {
        Description = "How long the join token joins machines: 90s, 30m, 1h, 2d (1 minute to 7 days)",
        DefaultValueFactory = _ => "1h",
    };

    public static Command Cluster()
    {
        var init = new Command("init", "Create the cluster's identity on its first controller and print the join command, with a join token") { Ttl, ControllerConnection.Urls, ControllerConnection.Token };
        init.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            var cluster = await client.InitClusterAsync(ct);
            Console.WriteLine($"cluster {cluster.Id} created");
            PrintJoin(client, await client.CreateJoinTokenAsync(Durations.Parse(parse.GetValue(Ttl)!), ct));
        }));
        var show = new Command("show", "The cluster's identity") { ControllerConnection.Urls, ControllerConnection.Token, Json };
        show.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            var cluster = await client.ClusterAsync(ct);
            Console.WriteLine(parse.GetValue(Json) ? JsonSerializer.Serialize(cluster, ApiJsonContext.Default.ClusterRecord) : $"cluster {cluster.Id}, created {cluster.CreatedAt:u}");
        }));
        return new Command("cluster", "The cluster's identity and the join tokens machines join with") { init, show, Tokens() };
    }

    private static Command Tokens()
    {
        var create = new Command("create", "A new join token (any number of machines join with it until it expires) and the join command") { Ttl, ControllerConnection.Urls, ControllerConnection.Token, Json };
        create.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            var token = await client.CreateJoinTokenAsync(Durations.Parse(parse.GetValue(Ttl)!), ct);
            if (parse.GetValue(Json))
                Console.WriteLine(JsonSerializer.Serialize(token, ApiJsonContext.Default.JoinTokenCreated));
            else
                PrintJoin(client, token);
        }));
        var list = new Command("list", "Join tokens (never their secrets): expiry, and the machines that joined with each") { ControllerConnection.Urls, ControllerConnection.Token, Json };
        list.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            var tokens = await client.JoinTokensAsync(ct);
            if (parse.GetValue(Json))
            {
                Console.WriteLine(JsonSerializer.Serialize(tokens, ApiJsonContext.Default.IReadOnlyListJoinTokenInfo));
                return;
            }
            Table.Write(Console.Out, ["ID", "EXPIRES", "STATE", "JOINED"], tokens.Select(t => (IReadOnlyList<string>)
                [t.Id, t.ExpiresAt.ToLocalTime().ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture), t.Expired ? "expired" : "valid",
                 t.Joined.Count == 0 ? "-" : string.Join(", ", t.Joined.Select(j => $"{j.Name} ({j.Role})"))]));
        }));
        var id = new Argument<string>("id") { Description = "The token's id (the part before the dot)" };
        var revoke = new Command("revoke", "Delete a join token: no machine joins with it any more (machines that joined stay)") { id, ControllerConnection.Urls, ControllerConnection.Token };
        revoke.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var client = ControllerConnection.Open(parse);
            await client.RevokeJoinTokenAsync(parse.GetValue(id)!, ct);
            Console.WriteLine($"join token {parse.GetValue(id)} revoked");
        }));
        return new Command("token", "Join tokens: create, list, revoke") { create, list, revoke };
    }

    public static Command Join()
    {
        var controllers = new Option<string[]>("--controller") { Description = "Controller URL as this machine reaches it, e.g. http://10.0.0.1:7400 (repeat for standbys)", Required = true };
        var token = new Option<string>("--token") { Description = "The join token from `xenaoe cluster init` or `xenaoe cluster token create`", Required = true };
        var role = new Option<string>("--role") { Description = "disk (a disk server) or cpu (a CPU server)", Required = true };
        role.AcceptOnlyFromAmong("disk", "cpu");
        var name = new Option<string>("--name") { Description = "The name it registers under; default this machine's host name" };
        var interfaces = new Option<string[]>("--interface", "-i") { Description = "Storage NIC (repeat for each)", Required = true };
        var mtu = new Option<int?>("--storage-mtu") { Description = "The MTU the storage network is built for (9000 on jumbo-frame switches): NICs below it are refused" };
        var listen = new Option<string>("--listen") { Description = "Management address:port of the daemon's API; default the address this machine reaches the controller from, port 7200 (disk) or 7300 (cpu)" };
        var labels = new Option<string[]>("--label") { Description = "Failure-domain label key=value, e.g. power=circuit1 (repeat)" };
        var settings = new Option<string[]>("--set") { Description = "Any other key of the role's configuration file, key=value, e.g. pool=/srv/xenaoe (repeat)" };
        var directory = new Option<string>("--config-dir") { Description = "Where ROLE.conf and the token file go", DefaultValueFactory = _ => "/etc/xenaoe" };
        var noStart = new Option<bool>("--no-start") { Description = "Write the configuration only: do not enable and start the unit, nor wait for the registration" };
        var wait = new Option<string>("--wait") { Description = "How long to wait for the machine to be listed: 30s, 2m", DefaultValueFactory = _ => "2m" };
        var command = new Command("join", "Join this machine to a cluster: write /etc/xenaoe/ROLE.conf and the cluster's token, start xenaoe-ROLE.service, and wait until the controller lists it")
            { controllers, token, role, name, interfaces, mtu, listen, labels, settings, directory, noStart, wait };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            var options = new JoinOptions
            {
                Controllers = parse.GetValue(controllers)!,
                Token = parse.GetValue(token)!,
                Role = parse.GetValue(role)!,
                Name = parse.GetValue(name) ?? Environment.MachineName.ToLowerInvariant(),
                Interfaces = parse.GetValue(interfaces)!,
                StorageMtu = parse.GetValue(mtu),
                Listen = parse.GetValue(listen) is { } text ? (IPEndPoint.TryParse(text, out var endpoint) && endpoint.Port != 0 ? endpoint
                    : throw new ArgumentException($"--listen '{text}' is not an address:port such as 10.0.0.11:7200")) : null,
                Labels = parse.GetValue(labels) ?? [],
                Settings = parse.GetValue(settings) ?? [],
                ConfigDirectory = parse.GetValue(directory)!,
                Start = !parse.GetValue(noStart),
                WaitTimeout = Durations.Parse(parse.GetValue(wait)!),
            };
            var result = await MachineJoin.RunAsync(options, Console.Out, ct);
            if (result.ListedAfter is not { } listed)
            {
                if (!options.Start)
                    Console.WriteLine($"not started (--no-start): `systemctl enable --now {result.Unit}` starts it, and it registers itself");
                return;
            }
            Console.WriteLine();
            using var client = new ControllerClient(options.Controllers, XenAoe.Agents.ApiToken.Read(result.TokenFile));
            if (options.Role == "disk")
                DiskCommands.PrintServers((await client.DiskServersAsync(ct)).Where(d => d.Name == options.Name));
            else
                HostCommands.PrintHosts((await client.HostsAsync(ct)).Where(h => h.Name == options.Name));
            Console.WriteLine();
            Console.WriteLine($"{options.Name} joined cluster {result.ClusterId}: listed {listed.TotalSeconds:0.0} s after the join began");
        }));
        return command;
    }

    private static void PrintJoin(ControllerClient client, JoinTokenCreated token)
    {
        var url = client.Urls[0];
        Console.WriteLine($"join token {token.Token}, valid until {token.ExpiresAt.ToLocalTime():yyyy-MM-dd HH:mm} for any number of machines (`xenaoe cluster token revoke {token.Id}` ends it)");
        Console.WriteLine();
        Console.WriteLine("On each disk server (as root; -i for each storage NIC):");
        Console.WriteLine($"  xenaoe join --controller {url} --token {token.Token} --role disk -i eth1 -i eth2");
        Console.WriteLine("On each CPU server:");
        Console.WriteLine($"  xenaoe join --controller {url} --token {token.Token} --role cpu -i eth1 -i eth2");
        if (Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.IsLoopback)
            Console.WriteLine($"({url} is this machine's loopback address: give the controller's management URL instead)");
    }
}
