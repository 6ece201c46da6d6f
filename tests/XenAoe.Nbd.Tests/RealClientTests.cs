using System.Net;
using System.Text.Json;
using XenAoe.Nbd.Tests.Infrastructure;

namespace XenAoe.Nbd.Tests;

/// <summary>Clients nobody here wrote (libnbd's nbdinfo, QEMU's NBD client in qemu-io and qemu-img, fio's libnbd engine) against exports over files.</summary>
[Trait("Category", "Integration")]
public sealed class RealClientTests : IAsyncLifetime
{
    private const long DiskSize = 64 << 20;
    private TestServer _test = null!;
    private string _diskPath = null!;

    public async Task InitializeAsync()
    {
        _test = await TestServer.StartAsync();
        _diskPath = _test.AddFileExport("disk", DiskSize);
    }

    public async Task DisposeAsync() => await _test.DisposeAsync();

    [Fact]
    public async Task Nbdinfo_reports_the_size_block_sizes_and_flags_of_an_export()
    {
        var result = (await Command.RunAsync("nbdinfo", "--json", "--no-content", _test.Uri("disk"))).EnsureSuccess();
        using var json = JsonDocument.Parse(result.StdOut);
        Assert.Equal("newstyle-fixed", json.RootElement.GetProperty("protocol").GetString());
        Assert.True(json.RootElement.GetProperty("structured").GetBoolean());
        var export = Assert.Single(json.RootElement.GetProperty("exports").EnumerateArray().ToList());
        Assert.Equal("disk", export.GetProperty("export-name").GetString());
        Assert.Equal("file disk.img", export.GetProperty("description").GetString());
        Assert.Equal(DiskSize, export.GetProperty("export-size").GetInt64());
        Assert.Equal(512, export.GetProperty("block_size_minimum").GetInt32());
        Assert.Equal(4096, export.GetProperty("block_size_preferred").GetInt32());
        Assert.Equal(32 << 20, export.GetProperty("block_size_maximum").GetInt32());
        Assert.False(export.GetProperty("is_read_only").GetBoolean());
        foreach (var flag in new[] { "can_flush", "can_fua", "can_trim", "can_zero", "can_multi_conn" })
            Assert.True(export.GetProperty(flag).GetBoolean(), flag);
        foreach (var flag in new[] { "can_cache", "can_df", "can_fast_zero" })
            Assert.False(export.GetProperty(flag).GetBoolean(), flag);
    }

    [Fact]
    public async Task Nbdinfo_lists_every_export_and_sees_a_read_only_one_as_read_only()
    {
        _test.AddFileExport("ro", 1 << 20, readOnly: true);
        var result = (await Command.RunAsync("nbdinfo", "--list", "--json", "--no-content", $"nbd+unix://?socket={_test.SocketPath}")).EnsureSuccess();
        using var json = JsonDocument.Parse(result.StdOut);
        var exports = json.RootElement.GetProperty("exports").EnumerateArray()
            .ToDictionary(e => e.GetProperty("export-name").GetString()!, e => e.GetProperty("is_read_only").GetBoolean());
        Assert.Equal(new Dictionary<string, bool> { ["disk"] = false, ["ro"] = true }, exports);
    }

    [Fact]
    public async Task Qemu_io_writes_a_pattern_that_reads_back_and_lands_in_the_file()
    {
        (await Command.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0xab 0 1M", "-c", "read -P 0xab 0 1M",
            "-c", "write -P 0x5c 4M 64k", "-c", "read -P 0x5c 4M 64k", "-c", "flush", _test.Uri("disk"))).EnsureSuccess();

        var file = await File.ReadAllBytesAsync(_diskPath);
        Assert.All(file.AsSpan(0, 1 << 20).ToArray(), b => Assert.Equal(0xab, b));
        Assert.Equal(0, file[1 << 20]);
        Assert.All(file.AsSpan(4 << 20, 64 << 10).ToArray(), b => Assert.Equal(0x5c, b));
    }

    [Fact]
    public async Task Qemu_io_write_zeroes_trim_and_fua_writes_succeed()
    {
        (await Command.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x11 0 2M", "-c", "write -z 0 1M", "-c", "read -P 0 0 1M",
            "-c", "read -P 0x11 1M 1M", "-c", "write -f -P 0x22 2M 4k", "-c", "discard 1M 1M", "--cache=none", _test.Uri("disk"))).EnsureSuccess();
        var file = await File.ReadAllBytesAsync(_diskPath);
        Assert.All(file.AsSpan(0, 1 << 20).ToArray(), b => Assert.Equal(0, b));
        Assert.All(file.AsSpan(2 << 20, 4096).ToArray(), b => Assert.Equal(0x22, b));
    }

    [Fact]
    public async Task Qemu_io_reads_a_read_only_export_and_is_refused_opening_it_for_writing()
    {
        _test.AddFileExport("ro", 1 << 20, readOnly: true);
        (await Command.RunAsync("qemu-io", "-r", "-f", "raw", "-c", "read -P 0 0 64k", _test.Uri("ro"))).EnsureSuccess();
        var write = await Command.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 1 0 64k", _test.Uri("ro"));
        Assert.NotEqual(0, write.ExitCode);
        Assert.Contains("Permission denied", write.StdErr);
    }

    [Fact]
    public async Task Qemu_img_reports_the_virtual_size_and_converts_an_image_in_and_out_unchanged()
    {
        var info = (await Command.RunAsync("qemu-img", "info", "--output=json", _test.Uri("disk"))).EnsureSuccess();
        using (var json = JsonDocument.Parse(info.StdOut))
            Assert.Equal(DiskSize, json.RootElement.GetProperty("virtual-size").GetInt64());

        var source = Path.Combine(_test.Directory, "source.img");
        var data = new byte[DiskSize];
        new Random(42).NextBytes(data.AsSpan(0, 40 << 20));
        await File.WriteAllBytesAsync(source, data);
        (await Command.RunAsync("qemu-img", ["convert", "-n", "-f", "raw", "-O", "raw", "-W", "-m", "8", source, _test.Uri("disk")], TimeSpan.FromMinutes(2))).EnsureSuccess();
        var exported = await File.ReadAllBytesAsync(_diskPath);
        Assert.True(data.AsSpan().SequenceEqual(exported), "the exported file differs from the converted image");

        var back = Path.Combine(_test.Directory, "back.img");
        (await Command.RunAsync("qemu-img", ["convert", "-f", "raw", "-O", "raw", _test.Uri("disk"), back], TimeSpan.FromMinutes(2))).EnsureSuccess();
        var readBack = await File.ReadAllBytesAsync(back);
        Assert.True(data.AsSpan().SequenceEqual(readBack), "the image read back through NBD differs");
        (await Command.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", source, _test.Uri("disk"))).EnsureSuccess();
    }

    [Fact]
    public async Task Fio_random_writes_at_queue_depth_32_verify_without_errors()
    {
        var result = (await Command.RunAsync("fio", [
            "--name=verify", "--ioengine=nbd", $"--uri={_test.Uri("disk")}", "--rw=randwrite", "--bs=4k", "--iodepth=32",
            "--size=64M", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--output-format=json",
        ], TimeSpan.FromMinutes(3))).EnsureSuccess();
        using var json = JsonDocument.Parse(result.StdOut[result.StdOut.IndexOf('{')..]);
        var job = json.RootElement.GetProperty("jobs")[0];
        Assert.Equal(0, job.GetProperty("error").GetInt32());
        Assert.Equal(DiskSize, job.GetProperty("write").GetProperty("io_bytes").GetInt64());
        Assert.Equal(DiskSize, job.GetProperty("read").GetProperty("io_bytes").GetInt64());
    }

    [Fact]
    public async Task Fio_verifies_without_errors_when_requests_run_inline()
    {
        await using var test = await TestServer.StartAsync(new NbdServerOptions { RunRequestsInline = true });
        test.AddFileExport("disk", 32 << 20);
        (await Command.RunAsync("fio", [
            "--name=inline", "--ioengine=nbd", $"--uri={test.Uri("disk")}", "--rw=randrw", "--bs=4k", "--bsrange=512-256k", "--iodepth=32",
            "--size=32M", "--verify=crc32c", "--verify_fatal=1",
        ], TimeSpan.FromMinutes(3))).EnsureSuccess();
    }

    [Fact]
    public async Task Several_clients_at_once_on_two_exports_each_see_their_own_writes()
    {
        var second = _test.AddFileExport("second", DiskSize);
        var writers = Enumerable.Range(0, 4).Select(i => Command.RunAsync("qemu-io", "-f", "raw",
            "-c", $"write -P {0x30 + i} {i * 8}M 8M", "-c", $"read -P {0x30 + i} {i * 8}M 8M", _test.Uri(i % 2 == 0 ? "disk" : "second")));
        var fio = Command.RunAsync("fio", [
            "--name=multi", "--ioengine=nbd", $"--uri={_test.Uri("disk")}", "--rw=randrw", "--bs=4k", "--iodepth=16", "--numjobs=3",
            "--offset=32M", "--size=8M", "--offset_increment=8M", "--verify=crc32c", "--verify_fatal=1", "--group_reporting",
        ], TimeSpan.FromMinutes(3));
        foreach (var result in await Task.WhenAll([.. writers, fio]))
            result.EnsureSuccess();

        var disk = await File.ReadAllBytesAsync(_diskPath);
        var other = await File.ReadAllBytesAsync(second);
        for (var i = 0; i < 4; i++)
        {
            var file = i % 2 == 0 ? disk : other;
            Assert.True(file.AsSpan(i * (8 << 20), 8 << 20).IndexOfAnyExcept((byte)(0x30 + i)) < 0, $"region {i} holds bytes of another writer");
        }
    }

    [Fact]
    public async Task Qemu_io_and_nbdinfo_work_over_tcp_on_an_ephemeral_port()
    {
        await using var server = new NbdServer();
        await using var device = XenAoe.Block.FileBlockDevice.Open(_diskPath);
        server.AddExport("tcpdisk", device);
        await server.StartAsync([new IPEndPoint(IPAddress.Loopback, 0)], CancellationToken.None);
        var port = ((IPEndPoint)Assert.Single(server.LocalEndPoints)).Port;
        Assert.NotEqual(0, port);

        var uri = $"nbd://127.0.0.1:{port}/tcpdisk";
        (await Command.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x7e 1M 256k", "-c", "read -P 0x7e 1M 256k", uri)).EnsureSuccess();
        var info = (await Command.RunAsync("nbdinfo", "--json", "--no-content", uri)).EnsureSuccess();
        Assert.Contains("\"export-size\": 67108864", info.StdOut);
        var file = await File.ReadAllBytesAsync(_diskPath);
        Assert.True(file.AsSpan(1 << 20, 256 << 10).IndexOfAnyExcept((byte)0x7e) < 0);
    }

    [Fact]
    public async Task Real_clients_leave_no_warnings_and_no_connections_behind()
    {
        (await Command.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 1 0 64k", _test.Uri("disk"))).EnsureSuccess();
        (await Command.RunAsync("nbdinfo", "--list", $"nbd+unix://?socket={_test.SocketPath}")).EnsureSuccess();
        (await Command.RunAsync("nbdinfo", "--size", _test.Uri("disk"))).EnsureSuccess();
        await Eventually.TrueAsync(() => _test.Server.ActiveConnections == 0, Eventually.DefaultTimeout, "every client connection to be closed");
        Assert.Empty(_test.Log.Warnings);
    }
}
