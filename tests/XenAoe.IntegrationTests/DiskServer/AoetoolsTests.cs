using XenAoe.Aoe;
using XenAoe.IntegrationTests.Infrastructure;
using XenAoe.Net;

namespace XenAoe.IntegrationTests.DiskServer;

/// <summary>Our disk server against the userland AoE clients of aoetools, which nobody here wrote.</summary>
[Trait("Category", "Integration")]
public sealed class AoetoolsTests
{
    private static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Aoeping_identifies_the_target_with_its_size_and_lba48()
    {
        await using var lab = await NetworkLab.CreateAsync();
        await using var disk = DiskServerHost.Create(await lab.AddHostAsync("disk"));
        var client = await lab.AddHostAsync("client");
        await disk.CreateVolumeAsync("vm1", "e3.7", "96M");
        await disk.StartAsync();

        var result = (await client.RunAsync("aoeping", ["-i", "3", "7", "eth0"], ClientTimeout)).EnsureSuccess();
        var page = ParseHexDump(result.StdOut);
        Assert.Equal(IdentifyDevice.Length, page.Length);
        Assert.Equal(96UL * 1024 * 1024 / 512, IdentifyDevice.ReadSectors(page));
        Assert.NotEqual(0, IdentifyDevice.ReadWord(page, 83) & 1 << 10);
        Assert.Equal("XenAoE vm1", IdentifyDevice.ReadString(page, 27, 40));
    }

    [Fact]
    public async Task Aoecfg_sets_tests_and_reads_the_config_string_and_it_survives_a_restart()
    {
        await using var lab = await NetworkLab.CreateAsync();
        await using var disk = DiskServerHost.Create(await lab.AddHostAsync("disk"));
        var client = await lab.AddHostAsync("client");
        await disk.CreateVolumeAsync("vm1", "e1.0", "8M");
        await disk.StartAsync();

        Task<CommandResult> Aoecfg(params string[] args) => client.RunAsync("aoecfg", [.. args, "1", "0", "eth0"], ClientTimeout);

        Assert.Equal("owner=cpu1", (await Aoecfg("-c", "set", "-s", "owner=cpu1")).EnsureSuccess().StdOut.Trim());
        // A set of a different string while one is present is refused with error 4, which aoecfg prints as *badcfg*.
        Assert.Equal("*badcfg*", (await Aoecfg("-c", "set", "-s", "owner=cpu2", "-t", "2")).EnsureSuccess().StdOut.Trim());
        Assert.Equal("owner=cpu1", (await Aoecfg("-c", "test", "-s", "owner=cpu1")).EnsureSuccess().StdOut.Trim());
        Assert.Equal("owner=cpu1", (await Aoecfg("-c", "prefix", "-s", "owner=")).EnsureSuccess().StdOut.Trim());
        // A test that does not match gets no reply: aoecfg gives up after its timeout having printed nothing.
        Assert.Equal("", (await Aoecfg("-c", "test", "-s", "owner=cpu2", "-t", "2")).StdOut.Trim());
        Assert.Equal("owner=cpu2", (await Aoecfg("-c", "fset", "-s", "owner=cpu2")).EnsureSuccess().StdOut.Trim());

        await disk.StopAsync();
        await disk.StartAsync();
        Assert.Equal("owner=cpu2", (await Aoecfg("-c", "read")).EnsureSuccess().StdOut.Trim());
    }

    [Fact]
    public async Task Aoe_sancheck_sees_jumbo_payloads_and_one_path_per_target_nic()
    {
        await using var lab = await NetworkLab.CreateAsync(switches: 2);
        await using var disk = DiskServerHost.Create(await lab.AddHostAsync("disk"));
        var client = await lab.AddHostAsync("client");
        await disk.CreateVolumeAsync("vm1", "e2.1", "16M");
        await disk.StartAsync();

        var report = (await client.RunAsync("aoe-sancheck", [], TimeSpan.FromSeconds(60))).EnsureSuccess().StdOut;
        var line = report.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("e2.1", StringComparison.Ordinal))
            ?? throw new Xunit.Sdk.XunitException($"aoe-sancheck did not list e2.1:\n{report}");
        var fields = line.Split((char[])['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("2", fields[1]); // one MAC per target NIC
        Assert.Equal("8704", fields[2]); // 17 sectors per frame at MTU 9000
    }

    [Fact]
    public async Task Hostile_frames_are_counted_and_the_target_keeps_serving()
    {
        await using var lab = await NetworkLab.CreateAsync();
        await using var disk = DiskServerHost.Create(await lab.AddHostAsync("disk"));
        var client = await lab.AddHostAsync("client");
        await disk.CreateVolumeAsync("vm1", "e1.0", "8M");
        await disk.StartAsync();
        var targetMac = MacAddress.Parse(await disk.Host.MacAsync("eth0"));

        using (var socket = client.Invoke(() => PacketSocket.Open("eth0", AoeProtocol.EtherType)))
        {
            var frame = new byte[9000];
            new AoeHeader { Destination = targetMac, Source = socket.Interface.Mac, Version = 1, Shelf = 1, Slot = 0, Command = AoeCommand.Ata, Tag = 1 }.Write(frame);
            socket.Send(frame.AsSpan(0, 20)); // a truncated header, padded to 60 by the socket: an ATA frame whose arguments are zeros
            var badVersion = frame.AsSpan(0, 60).ToArray();
            badVersion[14] = 0x30;
            socket.Send(badVersion);
            var unknown = frame.AsSpan(0, 60).ToArray();
            unknown[19] = 0x77;
            socket.Send(unknown);
            new AtaHeader { Flags = AtaFlags.Extended | AtaFlags.Write, SectorCount = 200, CommandOrStatus = AtaCommands.WriteSectorsExt, Lba = 0 }.Write(frame);
            socket.Send(frame.AsSpan(0, 1000)); // claims 200 sectors, carries under 2
            new AtaHeader { Flags = AtaFlags.Extended, SectorCount = 1, CommandOrStatus = AtaCommands.ReadSectorsExt, Lba = 1UL << 40 }.Write(frame);
            socket.Send(frame.AsSpan(0, 60)); // far past the end
        }

        await Eventually.TrueAsync(async () =>
        {
            var c = await disk.CountersAsync();
            return c["bad_version"] >= 1 && c["unknown_command"] >= 1 && c["too_many_sectors"] >= 1 && c["out_of_range"] >= 1;
        }, TimeSpan.FromSeconds(10), "the disk server to count the bad version, unknown command, oversized and out-of-range frames");
        (await client.RunAsync("aoeping", ["-i", "1", "0", "eth0"], ClientTimeout)).EnsureSuccess();
        Assert.False(disk.Process.HasExited);
    }

    [Fact]
    public async Task The_api_on_the_management_network_needs_the_token_while_the_local_socket_does_not()
    {
        await using var lab = await NetworkLab.CreateAsync();
        await using var disk = DiskServerHost.Create(await lab.AddHostAsync("disk"));
        await disk.CreateVolumeAsync("vm1", "e1.0", "8M");
        var refused = await DiskServerHost.CliAsync("disk", "serve", "--pool", disk.Pool, "-i", "eth0", "--listen", "127.0.0.1:7200");
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("key 'listen': needs token_file", refused.StdErr, StringComparison.Ordinal);

        var tokenFile = Path.Combine(disk.Pool, "token");
        await disk.StartAsync("--listen", "127.0.0.1:7200", "--token-file", tokenFile);
        var token = (await File.ReadAllTextAsync(tokenFile)).Trim();
        // The API listens on the disk server's own loopback: the requests are made from inside its namespace.
        using var http = NamespaceHttp.Create(disk.Host.Namespace, TimeSpan.FromSeconds(5));
        async Task<HttpResponseMessage> GetAsync(string? bearer)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "http://127.0.0.1:7200/v1/volumes");
            if (bearer is not null)
                request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);
            return await http.SendAsync(request);
        }
        var denied = await GetAsync(null);
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, denied.StatusCode);
        Assert.Contains("bearer token", await denied.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, (await GetAsync("not-the-token-at-all")).StatusCode);
        var allowed = await GetAsync(token);
        Assert.Equal(System.Net.HttpStatusCode.OK, allowed.StatusCode);
        Assert.Contains("\"vm1\"", await allowed.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        // The local socket (root on this machine) needs no token.
        (await DiskServerHost.CliAsync("disk", "volume", "list", "--pool", disk.Pool)).EnsureSuccess();
    }

    [Fact]
    public async Task Volume_administration_works_while_the_daemon_serves_the_pool()
    {
        await using var lab = await NetworkLab.CreateAsync();
        await using var disk = DiskServerHost.Create(await lab.AddHostAsync("disk"));
        var client = await lab.AddHostAsync("client");
        await disk.CreateVolumeAsync("first", "e1.0", "8M");
        await disk.StartAsync();

        // Created through the running daemon's API: it is announced and answers at once.
        await disk.CreateVolumeAsync("second", "e1.1", "4M");
        (await client.RunAsync("aoeping", ["-i", "1", "1", "eth0"], ClientTimeout)).EnsureSuccess();
        (await DiskServerHost.CliAsync("disk", "volume", "resize", "second", "--pool", disk.Pool, "--size", "12M")).EnsureSuccess();
        var page = ParseHexDump((await client.RunAsync("aoeping", ["-i", "1", "1", "eth0"], ClientTimeout)).EnsureSuccess().StdOut);
        Assert.Equal(12UL * 2048, IdentifyDevice.ReadSectors(page));

        var reserve = await DiskServerHost.CliAsync("disk", "volume", "reserve", "second", "--pool", disk.Pool, "--mac", "02:00:00:00:00:01");
        reserve.EnsureSuccess();
        var refused = await DiskServerHost.CliAsync("disk", "volume", "delete", "second", "--pool", disk.Pool);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("reserved", refused.StdErr, StringComparison.Ordinal);
        (await DiskServerHost.CliAsync("disk", "volume", "delete", "second", "--pool", disk.Pool, "--force")).EnsureSuccess();
        Assert.False(File.Exists(disk.VolumeFile("second")));
        var list = (await DiskServerHost.CliAsync("disk", "volume", "list", "--pool", disk.Pool, "--json")).EnsureSuccess().StdOut;
        Assert.Contains("\"first\"", list, StringComparison.Ordinal);
        Assert.DoesNotContain("\"second\"", list, StringComparison.Ordinal);
    }

    /// <summary>aoeping -i prints the IDENTIFY page as lines of hex bytes after a header line.</summary>
    private static byte[] ParseHexDump(string output)
    {
        var bytes = new List<byte>();
        foreach (var line in output.Split('\n').Skip(1))
        {
            foreach (var token in line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                bytes.Add(Convert.ToByte(token, 16));
        }
        return [.. bytes];
    }
}
