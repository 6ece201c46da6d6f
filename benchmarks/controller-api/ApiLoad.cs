using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using XenAoe.Control.Jobs;
using XenAoe.Control.Model;
using XenAoe.Control.Store;
using XenAoe.Hypervisors;

namespace XenAoe.ControllerApiLoad;

/// <summary>Latencies of one load run: milliseconds per request, from sending it to reading the whole body.</summary>
public sealed record LoadResult(int Clients, long Requests, long Failures, TimeSpan Elapsed, double P50Ms, double P99Ms, double MaxMs)
{
    public double RequestsPerSecond => Requests / Elapsed.TotalSeconds;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Clients} clients, {Requests} requests in {Elapsed.TotalSeconds:F1} s ({RequestsPerSecond:F0} req/s, {Failures} failed): " +
        $"p50 {P50Ms:F1} ms, p99 {P99Ms:F1} ms, max {MaxMs:F1} ms");
}

/// <summary>An inventory of many VMs and finished jobs, and concurrent clients reading the lists back through the API.</summary>
public static class ApiLoad
{
    private static readonly ControlJsonContext Json = ControlJsonContext.Default;

    /// <summary>
    /// Writes <paramref name="vms"/> VM records (two disk legs each, running nowhere) and <paramref name="jobs"/> succeeded jobs
    /// straight into the store, in transactions of 100; the job counter continues after them.
    /// </summary>
    public static async Task SeedAsync(IStateStore store, int vms, int jobs, CancellationToken ct = default)
    {
        var now = DateTimeOffset.UtcNow;
        var operations = new List<StoreOperation>();
        for (var i = 0; i < vms; i++)
        {
            var name = $"load-vm-{i:D4}";
            var vm = new VmRecord
            {
                Name = name, Uuid = Guid.NewGuid(), Cpus = 1 + i % 4, MemoryMiB = 512 << (i % 3),
                Boot = new VmBoot("/var/lib/xenaoe/images/vmlinuz", "/var/lib/xenaoe/images/initrd.img", "console=ttyS0 root=/dev/vda"),
                Disks = [new VmDiskRecord("root", 1L << 30,
                    [new LegRecord("disk-a", $"{name}-root", $"e1.{i % 255}"), new LegRecord("disk-b", $"{name}-root", $"e2.{i % 255}")])],
                Desired = VmDesiredState.Stopped, CreatedAt = now,
            };
            operations.Add(StoreOperation.Put($"vms/{name}", JsonSerializer.SerializeToUtf8Bytes(vm, Json.VmRecord)));
            await FlushAsync(store, operations, 100, ct).ConfigureAwait(false);
        }
        for (var i = 1; i <= jobs; i++)
        {
            var job = new JobRecord
            {
                Id = i.ToString("D6", CultureInfo.InvariantCulture), Kind = "vm-start", Target = $"load-vm-{i % Math.Max(vms, 1):D4}",
                State = JobState.Succeeded, Owner = "loopback-controller", Attempts = 1, CreatedAt = now, StartedAt = now, FinishedAt = now,
                Format = JobRecord.CurrentFormat, Parameters = JobKinds.VmStart.Write(new NoParameters()),
                Steps = [new JobStep("place", JobState.Succeeded, now, now, "cpu-1"), new JobStep("start", JobState.Succeeded, now, now)],
                Log = [new JobLogLine(now, "running on cpu-1")],
            };
            operations.Add(StoreOperation.Put($"jobs/{job.Id}", JsonSerializer.SerializeToUtf8Bytes(job, Json.JobRecord)));
            await FlushAsync(store, operations, 100, ct).ConfigureAwait(false);
        }
        operations.Add(StoreOperation.Put("meta/next-job", (jobs + 1).ToString(CultureInfo.InvariantCulture)));
        await FlushAsync(store, operations, 1, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// <paramref name="clients"/> loops, each issuing GETs of <paramref name="paths"/> in turn (one request in flight per client,
    /// the whole body read) until <paramref name="duration"/> has passed.
    /// </summary>
    public static async Task<LoadResult> RunAsync(HttpClient http, int clients, TimeSpan duration, IReadOnlyList<string> paths, CancellationToken ct = default)
    {
        var latencies = new List<double>[clients];
        var failures = 0L;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async c =>
        {
            var mine = latencies[c] = new List<double>(4096);
            for (var i = c; clock.Elapsed < duration; i++)
            {
                var started = Stopwatch.GetTimestamp();
                using var response = await http.GetAsync(paths[i % paths.Count], HttpCompletionOption.ResponseContentRead, ct).ConfigureAwait(false);
                mine.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                if (!response.IsSuccessStatusCode)
                    Interlocked.Increment(ref failures);
            }
        })).ConfigureAwait(false);
        var elapsed = clock.Elapsed;
        var all = latencies.SelectMany(l => l).Order().ToArray();
        return new LoadResult(clients, all.Length, failures, elapsed, Percentile(all, 0.50), Percentile(all, 0.99), all.Length == 0 ? 0 : all[^1]);
    }

    private static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];

    private static async Task FlushAsync(IStateStore store, List<StoreOperation> operations, int batch, CancellationToken ct)
    {
        if (operations.Count < batch)
            return;
        await store.TransactAsync(operations, ct).ConfigureAwait(false);
        operations.Clear();
    }
}
