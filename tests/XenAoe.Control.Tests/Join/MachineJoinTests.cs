using System.Net;
using System.Text.Json;
using XenAoe.Agents.Configuration;
using XenAoe.Agents.Disk;
using XenAoe.Control.Api;
using XenAoe.Control.Join;
using XenAoe.Control.Tests.Api;

namespace XenAoe.Control.Tests.Join;

/// <summary>
/// <c>xenaoe join</c> against an in-process controller: a refused token or a bad setting writes nothing; an accepted one
/// writes a configuration the daemon reads as it is. The machine's NIC is <c>lo</c>, which every machine has.
/// </summary>
[Trait("Category", "Integration")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class MachineJoinTests(ControllerFixture fixture) : IClassFixture<ControllerFixture>, IDisposable
{
    private readonly string _directory = Path.Combine(Directory.CreateTempSubdirectory("xenaoe-join-").FullName, "etc");

    public void Dispose() => Directory.Delete(Path.GetDirectoryName(_directory)!, recursive: true);

    [Fact]
    public async Task An_accepted_token_writes_a_configuration_the_disk_daemon_reads_and_the_cluster_token()
    {
        var token = await TokenAsync();
        var result = await MachineJoin.RunAsync(Options(token.Token) with { Labels = ["power=circuit2"], Settings = ["spin_us=0"] }, TextWriter.Null, default);

        Assert.Null(result.ListedAfter);
        Assert.Equal(fixture.Controller.Token, File.ReadAllText(result.TokenFile).Trim());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(result.TokenFile) & ~UnixFileMode.GroupRead);
        var options = DiskServerOptions.From(DaemonSettings.Load(DiskServerOptions.Schema, result.ConfigFile, new Dictionary<string, string?>()));
        Assert.Equal("disk-j1", options.Name);
        Assert.Equal(["lo"], options.Interfaces);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 7299), options.Listen);
        Assert.Equal(TimeSpan.Zero, options.Target.SpinAfterBusy);
        Assert.Equal([fixture.Controller.BaseAddress.ToString().TrimEnd('/')], options.Registration!.Controllers);
        Assert.Equal("circuit2", options.Registration.Labels["power"]);
        using var client = new ControllerClient([fixture.Controller.BaseAddress.ToString()], fixture.Controller.Token);
        Assert.Contains((await client.JoinTokensAsync()).Single(t => t.Id == token.Id).Joined, j => j.Name == "disk-j1" && j.Role == "disk");
    }

    [Theory]
    [InlineData("bogus", "not a join token")]
    [InlineData("000000.0123456789abcdef0123456789abcdef", "is not known")]
    public async Task A_wrong_token_is_refused_and_nothing_is_written(string token, string reason)
    {
        var refused = await Assert.ThrowsAsync<ControlException>(() => MachineJoin.RunAsync(Options(token), TextWriter.Null, default));
        Assert.Contains(reason, refused.Message);
        Assert.False(Directory.Exists(_directory), $"{_directory} was created");
    }

    [Fact]
    public async Task An_expired_token_is_refused_and_nothing_is_written()
    {
        var token = await TokenAsync();
        // Expire it in the controller's store: a token's lifetime is at least a minute, too long to wait for here.
        var key = $"join-tokens/{token.Id}";
        var record = JsonSerializer.Deserialize((await fixture.State.Store.GetAsync(key))!.Value.Span, Model.ControlJsonContext.Default.JoinTokenRecord)!;
        await fixture.State.Store.PutAsync(key, JsonSerializer.SerializeToUtf8Bytes(record with { ExpiresAt = DateTimeOffset.UtcNow.AddSeconds(-1) },
            Model.ControlJsonContext.Default.JoinTokenRecord));
        var refused = await Assert.ThrowsAsync<ControlException>(() => MachineJoin.RunAsync(Options(token.Token), TextWriter.Null, default));
        Assert.Contains($"join token {token.Id} expired", refused.Message);
        Assert.False(Directory.Exists(_directory), $"{_directory} was created");
    }

    [Theory]
    [InlineData("interfaces", "no network interface 'eth-none'")]
    [InlineData("set", "not a key of disk.conf")]
    [InlineData("value", "key 'workers'")]
    [InlineData("label", "is not a label")]
    public async Task A_bad_setting_stops_the_join_before_the_token_is_spent(string what, string reason)
    {
        var token = await TokenAsync();
        var options = what switch
        {
            "interfaces" => Options(token.Token) with { Interfaces = ["eth-none"] },
            "set" => Options(token.Token) with { Settings = ["bogus=1"] },
            "value" => Options(token.Token) with { Settings = ["workers=lots"] },
            _ => Options(token.Token) with { Labels = ["Power"] },
        };
        var refused = await Assert.ThrowsAnyAsync<Exception>(() => MachineJoin.RunAsync(options, TextWriter.Null, default));
        Assert.Contains(reason, refused.Message);
        Assert.False(Directory.Exists(_directory), $"{_directory} was created");
        using var client = new ControllerClient([fixture.Controller.BaseAddress.ToString()], fixture.Controller.Token);
        Assert.Empty((await client.JoinTokensAsync()).Single(t => t.Id == token.Id).Joined);
    }

    [Fact]
    public async Task The_join_call_needs_no_API_token_and_refuses_a_wrong_join_token_with_403()
    {
        var before = await fixture.SnapshotAsync();
        using var response = await fixture.Anonymous.PostAsync("/api/v1/join", Api.Api.Json("""{"token":"000000.0123456789abcdef0123456789abcdef","role":"disk","name":"d1"}"""));
        await Api.Api.ErrorAsync(response, HttpStatusCode.Forbidden, "join token 000000 is not known");
        Assert.Equal(before, await fixture.SnapshotAsync());
        using var role = await fixture.Anonymous.PostAsync("/api/v1/join", Api.Api.Json("""{"token":"x","role":"controller","name":"d1"}"""));
        await Api.Api.ErrorAsync(role, HttpStatusCode.BadRequest, "role must be disk or cpu");
    }

    private async Task<JoinTokenCreated> TokenAsync()
    {
        using var client = new ControllerClient([fixture.Controller.BaseAddress.ToString()], fixture.Controller.Token);
        try
        {
            await client.InitClusterAsync();
        }
        catch (ControlException e) when (e.Status == 409)
        {
            // Another test of this class initialised the fixture's cluster.
        }
        return await client.CreateJoinTokenAsync();
    }

    private JoinOptions Options(string token) => new()
    {
        Controllers = [fixture.Controller.BaseAddress.ToString().TrimEnd('/')],
        Token = token,
        Role = "disk",
        Name = "disk-j1",
        Interfaces = ["lo"],
        Listen = new IPEndPoint(IPAddress.Loopback, 7299),
        ConfigDirectory = _directory,
        Start = false,
    };
}
