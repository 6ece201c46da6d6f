using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace XenAoe.Control.Tests.Api;

/// <summary>Jobs submitted through the API, run by the controller's own job runner (it leads: one SQLite controller).</summary>
[Trait("Category", "Integration")]
public sealed class ControllerApiJobTests(ControllerFixture fixture) : IClassFixture<ControllerFixture>
{
    [Fact]
    public async Task Jobs_submitted_through_the_API_are_listed_in_order_and_a_start_with_no_host_fails_with_the_reason()
    {
        string[] names = ["vm-j1", "vm-j2", "vm-j3"];
        foreach (var name in names)
            Assert.True(await fixture.State.CreateVmAsync(TestRecords.Vm(name, host: "ghost-host"), default));

        var submitted = new List<string>();
        foreach (var name in names)
        {
            var job = await Api.OkAsync(await fixture.Client.PostAsync($"/api/v1/vms/{name}/start", null), HttpStatusCode.Accepted);
            Assert.Equal("vm-start", job.GetProperty("kind").GetString());
            Assert.Equal(name, job.GetProperty("target").GetString());
            submitted.Add(job.GetProperty("id").GetString()!);
        }
        var created = await Api.OkAsync(await fixture.Client.PostAsync("/api/v1/vms",
            Api.Json("""{"name":"vm-j4","cpus":2,"memoryMiB":1024,"diskBytes":1073741824,"kernel":"/boot/vmlinuz"}""")), HttpStatusCode.Accepted);
        Assert.Equal("vm-create", created.GetProperty("kind").GetString());
        submitted.Add(created.GetProperty("id").GetString()!);

        var listed = (await Api.OkAsync(await fixture.Client.GetAsync("/api/v1/jobs"))).EnumerateArray().Select(j => j.GetProperty("id").GetString()!).ToList();
        Assert.Equal(submitted, listed.Where(submitted.Contains));
        Assert.Equal(listed.Order(StringComparer.Ordinal), listed);
        Assert.Equal(submitted.Order(StringComparer.Ordinal), submitted);

        foreach (var (id, target) in submitted.Zip(names.Append("vm-j4")))
        {
            var job = await FinishedAsync(id);
            Assert.Equal("Failed", job.GetProperty("state").GetString());
            var error = job.GetProperty("error").GetString() ?? "";
            Assert.True(error.Contains($"no CPU server can take {target}", StringComparison.Ordinal), $"job {id}: expected the error to say no CPU server can take {target}: {error}");
        }
        // The failed start left the VM records as they were.
        foreach (var name in names)
            Assert.Equal("ghost-host", (await fixture.State.VmAsync(name, default))!.Host);
        Assert.Null(await fixture.State.VmAsync("vm-j4", default));
    }

    [Fact]
    public async Task A_second_operation_on_a_VM_with_an_unfinished_job_is_a_409_naming_the_job()
    {
        // A host whose API accepts connections and never answers: the start job waits on it until the controller stops.
        using var blackHole = new TcpListener(IPAddress.Loopback, 0);
        blackHole.Start();
        var held = new List<Socket>();
        using var stopAccepting = new CancellationTokenSource();
        var accepting = Task.Run(async () =>
        {
            try
            {
                while (true)
                    held.Add(await blackHole.AcceptSocketAsync(stopAccepting.Token));
            }
            catch (OperationCanceledException)
            {
                // Test over.
            }
        });
        try
        {
            await fixture.State.PutHostAsync(TestRecords.Host("cpu-hole", $"http://127.0.0.1:{((IPEndPoint)blackHole.LocalEndpoint).Port}"), default);
            Assert.True(await fixture.State.CreateVmAsync(TestRecords.Vm("vm-busy", host: "cpu-hole"), default));

            var first = await Api.OkAsync(await fixture.Client.PostAsync("/api/v1/vms/vm-busy/start", null), HttpStatusCode.Accepted);
            var id = first.GetProperty("id").GetString()!;
            var running = await WaitForAsync(id, j => j.GetProperty("state").GetString() == "Running", "Running");
            Assert.Equal("loopback-controller", running.GetProperty("owner").GetString());

            var jobsBefore = await JobKeysAsync();
            foreach (var (method, path, body) in new (string, string, string?)[]
            {
                ("POST", "/api/v1/vms/vm-busy/start", null), ("POST", "/api/v1/vms/vm-busy/stop", """{"force":true}"""),
                ("POST", "/api/v1/vms/vm-busy/reboot", null), ("DELETE", "/api/v1/vms/vm-busy", null),
            })
            {
                using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = body is null ? null : Api.Json(body) };
                using var response = await fixture.Client.SendAsync(request);
                await Api.ErrorAsync(response, HttpStatusCode.Conflict, $"job {id}", "vm-busy");
            }
            Assert.Equal(jobsBefore, await JobKeysAsync());
            Assert.NotNull(await fixture.State.VmAsync("vm-busy", default));
        }
        finally
        {
            await stopAccepting.CancelAsync();
            await accepting;
            foreach (var socket in held)
                socket.Dispose();
        }
    }

    private async Task<string> JobKeysAsync() =>
        string.Join(',', (await fixture.State.Store.ListAsync("jobs/")).Select(e => e.Key)) + ";" + (await fixture.State.Store.GetAsync("meta/next-job"))?.ValueText;

    private Task<JsonElement> FinishedAsync(string id) =>
        WaitForAsync(id, j => j.GetProperty("state").GetString() is "Succeeded" or "Failed", "finished");

    private async Task<JsonElement> WaitForAsync(string id, Func<JsonElement, bool> condition, string expected)
    {
        var deadline = Stopwatch.StartNew();
        JsonElement job;
        while (true)
        {
            job = await Api.OkAsync(await fixture.Client.GetAsync($"/api/v1/jobs/{id}"));
            if (condition(job))
                return job;
            if (deadline.Elapsed > TimeSpan.FromSeconds(20))
                Assert.Fail($"expected job {id} to be {expected} within 20 s; it is {job}");
            await Task.Delay(50);
        }
    }
}
