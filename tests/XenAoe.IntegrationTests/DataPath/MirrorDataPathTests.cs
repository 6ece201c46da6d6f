using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace XenAoe.IntegrationTests.DataPath;

/// <summary>The CPU-server data path end to end: real NBD clients (qemu-io, nbdinfo, fio) on a mirror over two of our disk servers.</summary>
[Trait("Category", "Integration")]
public sealed partial class MirrorDataPathTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Qemu_io_writes_through_the_mirror_land_on_both_disk_servers()
    {
        await using var lab = await MirrorLab.StartAsync();
        await lab.ServeAsync();

        var info = (await Command.RunAsync("nbdinfo", ["--json", lab.Uri], TimeSpan.FromSeconds(30))).EnsureSuccess().StdOut;
        Assert.Contains($"\"export-size\": {MirrorLab.VolumeBytes - MirrorLab.DataOffset}", info, StringComparison.Ordinal);
        (await Command.RunAsync("qemu-io", ["-f", "raw", "-c", "write -P 0xab 0 4M", "-c", "read -P 0xab 0 4M", lab.Uri], TimeSpan.FromSeconds(60)))
            .EnsureSuccess();

        await lab.StopServingAsync();
        Assert.All(MirrorLab.DataOf(lab.Leg1File, 4 << 20), b => Assert.Equal(0xab, b));
        Assert.All(MirrorLab.DataOf(lab.Leg2File, 4 << 20), b => Assert.Equal(0xab, b));
    }

    [Fact]
    public async Task A_disk_server_killed_under_fio_costs_no_io_error_and_only_dirty_regions_are_resynced()
    {
        await using var lab = await MirrorLab.StartAsync();
        await lab.ServeAsync();

        var fio = Command.RunAsync("fio", ["--name=chaos", "--ioengine=nbd", $"--uri={lab.Uri}", "--rw=randwrite", "--bs=4k", "--iodepth=16",
            "--offset=8M", "--size=16M", "--loops=4", "--verify=crc32c", "--verify_fatal=1", "--do_verify=1", "--output-format=json"], TimeSpan.FromMinutes(5));
        await Task.Delay(TimeSpan.FromSeconds(1)); // let fio get going before the disk server dies
        await lab.Disk2.StopAsync(Signal.Kill);
        await lab.Serve.WaitForOutputAsync("degraded", TimeSpan.FromSeconds(30));
        var result = await fio;
        output.WriteLine(result.StdOut);
        result.EnsureSuccess();
        using var report = System.Text.Json.JsonDocument.Parse(result.StdOut[result.StdOut.IndexOf('{', StringComparison.Ordinal)..]);
        var job = report.RootElement.GetProperty("jobs")[0];
        Assert.Equal(0, job.GetProperty("error").GetInt32());
        // The longest a write waited: the leg timeout (1.5 s) plus the survivor's epoch update. The issue's bound is 2 s.
        var stall = TimeSpan.FromMicroseconds(job.GetProperty("write").GetProperty("clat_ns").GetProperty("max").GetDouble() / 1000);
        output.WriteLine($"longest write during the disk server's death: {stall.TotalMilliseconds:0} ms");
        Assert.True(stall < TimeSpan.FromSeconds(2), $"a write stalled {stall.TotalMilliseconds:0} ms when a leg died");

        await lab.Disk2.StartAsync();
        await lab.Serve.WaitForOutputAsync("done:", TimeSpan.FromSeconds(60));
        output.WriteLine(lab.Serve.Output);
        var copied = long.Parse(ResyncDone().Match(lab.Serve.Output).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        // fio wrote into 16 MiB from offset 8 MiB: at most those 16 regions (plus the neighbours a 4 KiB write touches) are dirty.
        Assert.InRange(copied, 1, 17L << 20);

        await lab.StopServingAsync();
        Assert.True(MirrorLab.DataOf(lab.Leg1File, MirrorLab.VolumeBytes - MirrorLab.DataOffset)
            .AsSpan().SequenceEqual(MirrorLab.DataOf(lab.Leg2File, MirrorLab.VolumeBytes - MirrorLab.DataOffset)), "the legs differ after resync");
    }

    [Fact]
    public async Task Fio_verifies_data_through_a_mirror_whose_legs_are_two_vblades()
    {
        await using var lab = await MirrorLab.StartWithVbladeAsync();
        await lab.ServeAsync();
        var fio = await Command.RunAsync("fio", ["--name=vblade", "--ioengine=nbd", $"--uri={lab.Uri}", "--rw=randwrite", "--bs=4k", "--iodepth=16",
            "--size=16M", "--verify=crc32c", "--verify_fatal=1", "--do_verify=1"], TimeSpan.FromMinutes(3));
        output.WriteLine(fio.StdOut);
        fio.EnsureSuccess();
        Assert.Contains("err= 0", fio.StdOut, StringComparison.Ordinal);
        await lab.StopServingAsync();
        Assert.True(MirrorLab.DataOf(lab.Leg1File, 16 << 20).AsSpan().SequenceEqual(MirrorLab.DataOf(lab.Leg2File, 16 << 20)), "the vblade legs differ");
    }

    [Fact]
    public async Task After_the_data_path_is_killed_mid_write_reassembly_resyncs_and_the_legs_match()
    {
        await using var lab = await MirrorLab.StartAsync();
        await lab.ServeAsync();
        var fio = Command.RunAsync("fio", ["--name=crash", "--ioengine=nbd", $"--uri={lab.Uri}", "--rw=randwrite", "--bs=64k", "--iodepth=32",
            "--size=32M", "--time_based", "--runtime=30"], TimeSpan.FromMinutes(2));
        await Task.Delay(TimeSpan.FromSeconds(2));
        await lab.Serve.KillAsync(Signal.Kill); // the host dies with writes in flight: no clean flag, dirty bits on both legs
        await fio; // fails: its server vanished

        await lab.ServeAsync();
        await lab.Serve.WaitForOutputAsync("done:", TimeSpan.FromSeconds(60));
        output.WriteLine(lab.Serve.Output);
        Assert.Matches(ResyncDone(), lab.Serve.Output);
        await lab.StopServingAsync();
        Assert.True(MirrorLab.DataOf(lab.Leg1File, MirrorLab.VolumeBytes - MirrorLab.DataOffset)
            .AsSpan().SequenceEqual(MirrorLab.DataOf(lab.Leg2File, MirrorLab.VolumeBytes - MirrorLab.DataOffset)), "the legs differ after the crash resync");
    }

    [Fact]
    public async Task A_dead_disk_servers_leg_is_replaced_by_a_volume_on_a_third_one_with_a_full_copy()
    {
        await using var lab = await MirrorLab.StartAsync();
        await using var disk3 = DiskServer.DiskServerHost.Create(await lab.Lab.AddHostAsync("disk3"));
        await disk3.CreateVolumeAsync("leg", "e3.0", $"{MirrorLab.VolumeBytes}");
        await disk3.StartAsync();
        await lab.ServeAsync();
        (await Command.RunAsync("qemu-io", ["-f", "raw", "-c", "write -P 0x5c 0 8M", lab.Uri], TimeSpan.FromSeconds(60))).EnsureSuccess();
        await lab.StopServingAsync();
        await lab.Disk2.StopAsync(Signal.Kill);

        var replaced = (await lab.MirrorCliAsync("replace", "--index", "1", "--new", "e3.0")).EnsureSuccess();
        output.WriteLine(replaced.StdOut + replaced.StdErr);
        Assert.Contains("healthy", replaced.StdOut, StringComparison.Ordinal);
        Assert.Contains("copying:", replaced.StdErr, StringComparison.Ordinal);
        Assert.True(MirrorLab.DataOf(lab.Leg1File, MirrorLab.VolumeBytes - MirrorLab.DataOffset)
            .AsSpan().SequenceEqual(MirrorLab.DataOf(disk3.VolumeFile("leg"), MirrorLab.VolumeBytes - MirrorLab.DataOffset)), "the new leg is not a full copy");
    }

    [GeneratedRegex(@"resync \S+ -> \S+ done: (\d+) bytes")]
    private static partial Regex ResyncDone();
}
