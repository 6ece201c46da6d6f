using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using XenAoe.Control.Jobs;

namespace XenAoe.Control.Tests.Api;

/// <summary>
/// The dashboard in a real browser: headless Chromium (<c>scripts/install-deps.sh</c> installs it) loads the page, runs its
/// script against the API for 3 s of virtual time and dumps the DOM it rendered.
/// </summary>
[Trait("Category", "Integration")]
public sealed class DashboardBrowserTests(ControllerFixture fixture) : IClassFixture<ControllerFixture>
{
    private const string Chromium = "/usr/bin/chromium";

    [Fact]
    public async Task With_the_token_in_the_fragment_the_page_renders_the_inventory()
    {
        var nobody = $"http://127.0.0.1:{ClosedPort()}";
        await fixture.State.PutHostAsync(TestRecords.Host("cpu-dash", nobody), default);
        Assert.True(await fixture.State.CreateVmAsync(TestRecords.Vm("vm-dash", host: null), default));
        var job = await fixture.State.SubmitJobAsync(JobKinds.VmStart, "vm-dash", new NoParameters(), default);

        var dom = await DumpDomAsync(new Uri(fixture.Controller.BaseAddress, $"/#token={fixture.Controller.Token}"));
        foreach (var expected in new[] { "<td>cpu-dash</td>", "<td>vm-dash</td>", $"<td>{job.Id}</td>", "loopback-controller (leader, sqlite)" })
            Assert.True(dom.Contains(expected, StringComparison.Ordinal), $"expected '{expected}' in the rendered page:\n{dom}");
        Assert.Contains("<span id=\"error\" class=\"bad\"></span>", dom, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_the_token_the_page_shows_the_401_error()
    {
        var dom = await DumpDomAsync(fixture.Controller.BaseAddress);
        Assert.True(dom.Contains("missing or wrong bearer token", StringComparison.Ordinal), $"expected the 401 error text in the rendered page:\n{dom}");
        Assert.DoesNotContain("<td>", dom, StringComparison.Ordinal);
    }

    private static async Task<string> DumpDomAsync(Uri url)
    {
        Assert.True(File.Exists(Chromium), $"{Chromium} is missing: run scripts/install-deps.sh (apt package chromium)");
        var profile = Directory.CreateTempSubdirectory("xenaoe-chromium-").FullName;
        try
        {
            var start = new ProcessStartInfo(Chromium)
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            };
            foreach (var argument in new[]
            {
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", $"--user-data-dir={profile}", "--virtual-time-budget=3000", "--dump-dom", url.ToString(),
            })
                start.ArgumentList.Add(argument);
            using var chromium = Process.Start(start) ?? throw new InvalidOperationException("chromium did not start");
            var stdout = chromium.StandardOutput.ReadToEndAsync();
            var stderr = chromium.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            try
            {
                await chromium.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                chromium.Kill(entireProcessTree: true);
                Assert.Fail($"chromium did not finish within 60 s: {await stderr}");
            }
            var dom = await stdout;
            Assert.True(chromium.ExitCode == 0 && dom.Length > 0, $"chromium exited with {chromium.ExitCode}: {await stderr}");
            return dom;
        }
        finally
        {
            Directory.Delete(profile, recursive: true);
        }
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
