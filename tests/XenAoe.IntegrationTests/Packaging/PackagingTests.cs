using XenAoe.IntegrationTests.DiskServer;

namespace XenAoe.IntegrationTests.Packaging;

/// <summary>The systemd units and the daemons' configuration files, checked by systemd itself and by the real CLI.</summary>
[Trait("Category", "Integration")]
public sealed class PackagingTests
{
    private static readonly string Repository = FindRepository();

    [Fact]
    public async Task The_systemd_units_pass_systemd_analyze_verify_without_a_warning()
    {
        // verify checks that ExecStart's program exists: the copies point at the CLI built beside the tests.
        var directory = Directory.CreateTempSubdirectory("xenaoe-units-").FullName;
        try
        {
            var apphost = Path.Combine(AppContext.BaseDirectory, "xenaoe");
            var units = new List<string>();
            foreach (var unit in Directory.GetFiles(Path.Combine(Repository, "packaging", "systemd"), "*.service"))
            {
                var copy = Path.Combine(directory, Path.GetFileName(unit));
                await File.WriteAllTextAsync(copy, (await File.ReadAllTextAsync(unit)).Replace("ExecStart=/usr/bin/xenaoe", $"ExecStart={apphost}", StringComparison.Ordinal));
                units.Add(copy);
            }
            Assert.Equal(3, units.Count);
            var result = await Command.RunAsync("systemd-analyze", ["verify", .. units], TimeSpan.FromSeconds(60));
            Assert.True(result.ExitCode == 0 && result.StdErr.Trim().Length == 0 && result.StdOut.Trim().Length == 0,
                $"systemd-analyze verify said (exit {result.ExitCode}): {result.StdOut}{result.StdErr}");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData("bogus = 1", "{0}: unknown key 'bogus' (a disk server knows name, shelf, pool, interfaces, storage_mtu, listen, token_file, buffers, workers, batch, spin_us, group_us, controllers, labels)")]
    [InlineData("interfaces = lo\nbuffers = lots", "{0}: key 'buffers': 'lots' is not a whole number 1-65535")]
    [InlineData("interfaces = xa-nosuchnic", "{0}: key 'interfaces': no network interface 'xa-nosuchnic' on this machine")]
    [InlineData("interfaces = lo\nstorage_mtu = 70000", "{0}: key 'storage_mtu': '70000' is not a whole number 1500-65535")]
    [InlineData("interfaces = lo\nlisten = 127.0.0.1:7200", "{0}: key 'listen': needs token_file")]
    public async Task A_bad_disk_conf_stops_the_daemon_with_one_line_naming_the_file_and_key(string conf, string expected)
    {
        var directory = Directory.CreateTempSubdirectory("xenaoe-conf-").FullName;
        try
        {
            var file = Path.Combine(directory, "disk.conf");
            var pool = Path.Combine(directory, "pool");
            await File.WriteAllTextAsync(file, $"pool = {pool}\n{conf}\n");
            var result = await DiskServerHost.CliAsync("disk", "serve", "--config", file);
            Assert.Equal(1, result.ExitCode);
            var lines = result.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Single(lines);
            Assert.StartsWith("error: " + string.Format(System.Globalization.CultureInfo.InvariantCulture, expected, file), lines[0], StringComparison.Ordinal);
            Assert.False(Directory.Exists(pool), "nothing is started (the pool is not even created) when a setting is bad");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Flags_override_the_environment_which_overrides_the_file()
    {
        var directory = Directory.CreateTempSubdirectory("xenaoe-conf-").FullName;
        try
        {
            var file = Path.Combine(directory, "disk.conf");
            await File.WriteAllTextAsync(file, $"pool = {directory}/pool\ninterfaces = lo\nbuffers = file\n");
            var fromEnvironment = await Command.RunAsync("env", ["XENAOE_BUFFERS=env", "dotnet", DiskServerHost.CliDll, "disk", "serve", "--config", file], TimeSpan.FromSeconds(60));
            Assert.Contains("error: environment XENAOE_BUFFERS: key 'buffers': 'env'", fromEnvironment.StdErr, StringComparison.Ordinal);
            var fromFlag = await Command.RunAsync("env", ["XENAOE_BUFFERS=env", "dotnet", DiskServerHost.CliDll, "disk", "serve", "--config", file, "--buffers", "flag"], TimeSpan.FromSeconds(60));
            Assert.Contains("error: command line --buffers: key 'buffers': 'flag'", fromFlag.StdErr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Every_key_is_documented_in_configuration_md_as_the_shipped_example()
    {
        var docs = await File.ReadAllTextAsync(Path.Combine(Repository, "docs", "CONFIGURATION.md"));
        foreach (var role in (string[])["disk", "host", "controller"])
        {
            var example = (await DiskServerHost.CliAsync("config", "example", role)).EnsureSuccess().StdOut;
            Assert.Contains(example, docs, StringComparison.Ordinal);
        }
    }

    private static string FindRepository()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "XenAoe.slnx")))
                return directory.FullName;
        }
        throw new DirectoryNotFoundException($"no XenAoe.slnx above {AppContext.BaseDirectory}");
    }
}
