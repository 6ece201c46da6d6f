using XenAoe.Hypervisors.Qemu;

namespace XenAoe.Hypervisors.Tests;

/// <summary>Re-adoption from the run directory without QEMU: what a driver makes of files a previous instance left.</summary>
public sealed class QemuDriverRunDirectoryTests : IAsyncLifetime
{
    private readonly string _runDirectory = Directory.CreateTempSubdirectory("xhv-unit-").FullName;
    private QemuDriver _driver = null!;

    public Task InitializeAsync()
    {
        _driver = new QemuDriver(new QemuDriverOptions { RunDirectory = _runDirectory, Accelerator = Accelerator.Tcg });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _driver.DisposeAsync();
        Directory.Delete(_runDirectory, recursive: true);
    }

    [Fact]
    public async Task A_pid_file_naming_a_process_that_is_not_the_vms_qemu_is_not_adopted()
    {
        // This test process is alive but is not QEMU: a recycled pid must not count as the VM.
        WriteVm("old", pid: Environment.ProcessId);

        var info = await _driver.InfoAsync("old");

        Assert.NotNull(info);
        Assert.False(info.IsAlive);
        Assert.Equal(VmState.Crashed, info.State);
        Assert.Equal(Accelerator.Tcg, info.Accelerator);
    }

    [Fact]
    public async Task A_recorded_exit_reason_makes_the_vm_stopped_with_that_reason()
    {
        var paths = WriteVm("done", pid: int.MaxValue);
        File.WriteAllText(paths.ExitReason, "guest-shutdown");

        var info = Assert.Single(await _driver.ListAsync());

        Assert.Equal(VmState.Stopped, info.State);
        Assert.Equal("guest-shutdown", info.StateDetail);
    }

    [Fact]
    public async Task Folders_without_a_vm_record_or_with_invalid_names_are_not_listed()
    {
        Directory.CreateDirectory(Path.Combine(_runDirectory, "empty"));
        Directory.CreateDirectory(Path.Combine(_runDirectory, "Not_A_Vm"));

        Assert.Empty(await _driver.ListAsync());
        Assert.Null(await _driver.InfoAsync("empty"));
        Assert.Null(await _driver.InfoAsync("../etc"));
    }

    [Fact]
    public async Task Operations_on_an_unknown_vm_say_so()
    {
        var error = await Assert.ThrowsAsync<HypervisorException>(() => _driver.RebootAsync("ghost"));

        Assert.Contains("ghost", error.Message, StringComparison.Ordinal);
        Assert.Equal(StopOutcome.AlreadyStopped, await _driver.StopAsync("ghost", TimeSpan.Zero));
    }

    [Fact]
    public void Tcg_and_kvm_requests_pass_through_and_auto_resolves_to_one_of_them()
    {
        Assert.Equal(Accelerator.Tcg, KvmProbe.Resolve(Accelerator.Tcg));
        Assert.Equal(Accelerator.Kvm, KvmProbe.Resolve(Accelerator.Kvm));
        var auto = KvmProbe.Resolve(Accelerator.Auto);
        Assert.Equal(KvmProbe.Available ? Accelerator.Kvm : Accelerator.Tcg, auto);
        Assert.Equal(KvmProbe.Available, KvmProbe.UnavailableReason is null);
    }

    private VmPaths WriteVm(string name, int pid)
    {
        var paths = VmPaths.For(_runDirectory, name);
        Directory.CreateDirectory(paths.Directory);
        var spec = new VmSpec(name, Guid.NewGuid(), 1, 128, new VmBoot("/boot/vmlinuz", null, "console=ttyS0"), [], []);
        File.WriteAllText(paths.Record, System.Text.Json.JsonSerializer.Serialize(new QemuDriver.VmRecord(spec, Accelerator.Tcg, null)));
        File.WriteAllText(paths.PidFile, $"{pid}\n");
        return paths;
    }
}
