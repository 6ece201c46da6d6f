using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using XenAoe.Hypervisors.Qmp;
using XenAoe.Os;

namespace XenAoe.Hypervisors.Qemu;

/// <summary>
/// Runs VMs as daemonized QEMU processes controlled over QMP. Every VM has a folder in the run directory (see
/// <see cref="VmPaths"/>); a new driver instance on the same folder re-adopts the QEMUs still running there, after
/// checking that the pid in the pid file is really that VM's QEMU (<c>/proc/PID/cmdline</c> names its QMP socket).
/// </summary>
/// <remarks>
/// Operations on one VM are serialized; different VMs proceed in parallel. QMP allows one client per socket, so only one
/// driver instance can manage a VM at a time: dispose the old one first. Disposing the driver leaves VMs running.
/// </remarks>
public sealed partial class QemuDriver : IHypervisorDriver, IAsyncDisposable
{
    private static readonly TimeSpan s_exitPoll = TimeSpan.FromMilliseconds(50);
    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true };

    private readonly QemuDriverOptions _options;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, Vm> _vms = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _locks = new(StringComparer.Ordinal);

    public QemuDriver(QemuDriverOptions options, ILogger<QemuDriver>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        Directory.CreateDirectory(options.RunDirectory);
    }

    public string RunDirectory => _options.RunDirectory;

    public Task<VmInfo> StartAsync(VmSpec spec, CancellationToken ct = default) => StartCoreAsync(spec, listenUri: null, ct);

    public Task<VmInfo> PrepareIncomingAsync(VmSpec spec, string listenUri, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(listenUri);
        return StartCoreAsync(spec, listenUri, ct);
    }

    public async Task<StopOutcome> StopAsync(string name, TimeSpan graceful, CancellationToken ct = default)
    {
        using var _ = await LockAsync(name, ct).ConfigureAwait(false);
        var vm = await FindAsync(name, ct).ConfigureAwait(false);
        if (vm is null || !vm.IsAlive)
            return StopOutcome.AlreadyStopped;
        try
        {
            await vm.Qmp().ExecuteAsync("system_powerdown", null, _options.Timeout, ct).ConfigureAwait(false);
            if (await WaitForExitAsync(vm, graceful, ct).ConfigureAwait(false))
            {
                Log.Stopped(_logger, name, "guest powered off");
                await vm.DisconnectAsync().ConfigureAwait(false);
                return StopOutcome.Graceful;
            }
        }
        catch (Exception e) when (e is QmpConnectionException or TimeoutException)
        {
            // No control channel: the only way left is the forced one below.
        }
        await ForceOffAsync(vm, $"forced off: still running {graceful.TotalSeconds:0.###} s after the ACPI power-down request", ct).ConfigureAwait(false);
        return StopOutcome.Forced;
    }

    public async Task KillAsync(string name, CancellationToken ct = default)
    {
        using var _ = await LockAsync(name, ct).ConfigureAwait(false);
        if (await FindAsync(name, ct).ConfigureAwait(false) is { IsAlive: true } vm)
            await ForceOffAsync(vm, "killed by the driver", ct).ConfigureAwait(false);
    }

    public async Task RebootAsync(string name, CancellationToken ct = default)
    {
        using var _ = await LockAsync(name, ct).ConfigureAwait(false);
        var vm = await RequireAliveAsync(name, ct).ConfigureAwait(false);
        await ExecuteAsync(vm, "system_reset", null, ct).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<VmInfo>> ListAsync(CancellationToken ct = default)
    {
        var result = new List<VmInfo>();
        foreach (var directory in Directory.EnumerateDirectories(_options.RunDirectory).Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileName(directory);
            if (!VmSpec.IsValidName(name))
                continue;
            if (await InfoAsync(name, ct).ConfigureAwait(false) is { } info)
                result.Add(info);
        }
        return result;
    }

    public async Task<VmInfo?> InfoAsync(string name, CancellationToken ct = default)
    {
        if (!VmSpec.IsValidName(name))
            return null;
        using var _ = await LockAsync(name, ct).ConfigureAwait(false);
        var vm = await FindAsync(name, ct).ConfigureAwait(false);
        return vm is null ? null : await DescribeAsync(vm, ct).ConfigureAwait(false);
    }

    public async Task MigrateAsync(string name, string destinationUri, MigrationOptions? options = null, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(destinationUri);
        options ??= MigrationOptions.Default;
        using var _ = await LockAsync(name, ct).ConfigureAwait(false);
        var vm = await RequireAliveAsync(name, ct).ConfigureAwait(false);
        await ExecuteAsync(vm, "migrate-set-parameters", new JsonObject
        {
            ["downtime-limit"] = (long)Math.Ceiling(options.DowntimeLimit.TotalMilliseconds),
            ["max-bandwidth"] = options.MaxBandwidth,
        }, ct).ConfigureAwait(false);
        Log.Migrating(_logger, name, destinationUri);
        await ExecuteAsync(vm, "migrate", new JsonObject { ["uri"] = destinationUri }, ct).ConfigureAwait(false);
    }

    public async Task<MigrationStatus> MigrationStatusAsync(string name, CancellationToken ct = default)
    {
        using var _ = await LockAsync(name, ct).ConfigureAwait(false);
        var vm = await RequireAliveAsync(name, ct).ConfigureAwait(false);
        return await QueryMigrateAsync(vm, ct).ConfigureAwait(false);
    }

    public async Task CancelMigrationAsync(string name, CancellationToken ct = default)
    {
        using var _ = await LockAsync(name, ct).ConfigureAwait(false);
        var vm = await RequireAliveAsync(name, ct).ConfigureAwait(false);
        await CancelAndWaitAsync(vm, ct).ConfigureAwait(false);
    }

    public async Task FinalizeSourceAsync(string name, bool succeeded, CancellationToken ct = default)
    {
        using var _ = await LockAsync(name, ct).ConfigureAwait(false);
        var vm = await RequireAliveAsync(name, ct).ConfigureAwait(false);
        if (succeeded)
        {
            // Quitting is only safe once QEMU itself says the guest has moved: otherwise the VM would run nowhere.
            var migration = await QueryMigrateAsync(vm, ct).ConfigureAwait(false);
            var status = await QueryStatusAsync(vm, ct).ConfigureAwait(false);
            if (migration.State != MigrationState.Completed || status != "postmigrate")
                throw new HypervisorException($"VM {name}: not quitting the source, its migration is {migration.RawState} and it is {status} (expected completed and postmigrate).");
            await ForceOffAsync(vm, "migrated away", ct).ConfigureAwait(false);
            DeleteFiles(vm);
            return;
        }

        await CancelAndWaitAsync(vm, ct).ConfigureAwait(false);
        var state = await QueryStatusAsync(vm, ct).ConfigureAwait(false);
        if (state != "running")
            await ExecuteAsync(vm, "cont", null, ct).ConfigureAwait(false);
        await WaitForStatusAsync(vm, "running", ct).ConfigureAwait(false);
    }

    public async Task FinalizeDestinationAsync(string name, bool succeeded, CancellationToken ct = default)
    {
        using var _ = await LockAsync(name, ct).ConfigureAwait(false);
        var vm = await FindAsync(name, ct).ConfigureAwait(false) ?? throw new HypervisorException($"VM {name} is unknown on this host.");
        if (!succeeded)
        {
            if (vm.IsAlive)
                await ForceOffAsync(vm, "incoming migration abandoned", ct).ConfigureAwait(false);
            DeleteFiles(vm);
            return;
        }
        if (!vm.IsAlive)
            throw new HypervisorException($"VM {name}: the incoming QEMU is gone ({ReadExitReason(vm) ?? "no exit reason recorded"}).");
        await WaitForStatusAsync(vm, "running", ct).ConfigureAwait(false);
        vm.Record = vm.Record with { Incoming = null };
        WriteRecord(vm.Paths, vm.Record);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var vm in _vms.Values)
            await vm.DisconnectAsync().ConfigureAwait(false);
        _vms.Clear();
    }

    private async Task<VmInfo> StartCoreAsync(VmSpec spec, string? listenUri, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate();
        using var _ = await LockAsync(spec.Name, ct).ConfigureAwait(false);
        if (await FindAsync(spec.Name, ct).ConfigureAwait(false) is { IsAlive: true } running)
            throw new HypervisorException($"VM {spec.Name} is already running here (pid {running.Pid}).");

        var paths = VmPaths.For(_options.RunDirectory, spec.Name);
        foreach (var socket in new[] { paths.Qmp, paths.SerialSocket, paths.VncSocket })
        {
            if (System.Text.Encoding.UTF8.GetByteCount(socket) > VmPaths.MaxSocketPath)
                throw new HypervisorException($"VM {spec.Name}: socket path {socket} is longer than {VmPaths.MaxSocketPath} bytes; use a shorter run directory.");
        }
        Directory.CreateDirectory(paths.Directory);
        foreach (var stale in new[] { paths.Qmp, paths.SerialSocket, paths.VncSocket, paths.PidFile, paths.ExitReason })
            File.Delete(stale);

        var accelerator = KvmProbe.Resolve(_options.Accelerator);
        var record = new VmRecord(spec, accelerator, listenUri);
        WriteRecord(paths, record);

        var args = QemuCommandLine.Build(spec, paths, accelerator, incoming: listenUri is not null);
        var (file, fullArgs) = _options.NetworkNamespace is { } ns
            ? ("ip", (IEnumerable<string>)["netns", "exec", ns, _options.QemuBinary, .. args])
            : (_options.QemuBinary, args);
        var result = await Command.RunAsync(file, fullArgs, _options.Timeout, ct).ConfigureAwait(false);
        if (!result.Succeeded)
            throw new HypervisorException($"VM {spec.Name}: QEMU did not start (exit {result.ExitCode}): {result.StdErr.Trim()}\nCommand: {result.CommandLine}");

        var vm = new Vm(spec.Name, paths, record, ReadPid(paths) ?? throw new HypervisorException($"VM {spec.Name}: QEMU daemonized but wrote no pid to {paths.PidFile}."));
        _vms[spec.Name] = vm;
        try
        {
            await ConnectAsync(vm, ct).ConfigureAwait(false);
            if (listenUri is not null)
                await ExecuteAsync(vm, "migrate-incoming", new JsonObject { ["uri"] = listenUri }, ct).ConfigureAwait(false);
        }
        catch
        {
            await ForceOffAsync(vm, "start failed", CancellationToken.None).ConfigureAwait(false);
            if (listenUri is not null)
                DeleteFiles(vm);
            throw;
        }
        Log.Started(_logger, spec.Name, vm.Pid, accelerator);
        return await DescribeAsync(vm, ct).ConfigureAwait(false);
    }

    private async Task<VmInfo> DescribeAsync(Vm vm, CancellationToken ct)
    {
        var spec = vm.Record.Spec;
        var consoles = new VmConsoles(vm.Paths.SerialSocket, vm.Paths.SerialLog,
            spec.Vnc is { } vnc ? $"tcp:{vnc.Host}:{vnc.Port}" : $"unix:{vm.Paths.VncSocket}");
        VmInfo Info(VmState state, string detail, int? pid) =>
            new(spec.Name, spec.Uuid, state, detail, pid, vm.Record.Accelerator, spec.Cpus, spec.MemoryMiB, consoles);

        if (!vm.IsAlive)
        {
            // QEMU announces an orderly end (SHUTDOWN) on QMP just before it exits, and the event handler records why; the
            // process can be gone before the reader has got to that line, so the rest of the QMP stream is read first.
            if (vm.Client is { } client)
                await Task.WhenAny(client.Completion, Task.Delay(_options.Timeout, ct)).ConfigureAwait(false);
            await vm.DisconnectAsync().ConfigureAwait(false);
            return ReadExitReason(vm) is { } reason
                ? Info(reason.StartsWith("guest-panic", StringComparison.Ordinal) ? VmState.Crashed : VmState.Stopped, reason, null)
                : Info(VmState.Crashed, "the QEMU process is gone without an orderly shutdown (killed from outside or crashed)", null);
        }
        string status;
        try
        {
            status = await QueryStatusAsync(vm, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is QmpConnectionException or TimeoutException)
        {
            return Info(VmState.Unknown, $"process alive, QMP does not answer: {e.Message}", vm.Pid);
        }
        var state = status switch
        {
            "running" => VmState.Running,
            "inmigrate" => VmState.Incoming,
            "finish-migrate" => VmState.Migrating,
            "internal-error" or "io-error" or "guest-panicked" or "watchdog" => VmState.Crashed,
            "shutdown" => VmState.Stopped,
            _ => VmState.Paused,
        };
        if (state == VmState.Running && (await QueryMigrateAsync(vm, ct).ConfigureAwait(false)).State is MigrationState.Setup or MigrationState.Active)
            state = VmState.Migrating;
        return Info(state, status, vm.Pid);
    }

    private async Task<Vm?> FindAsync(string name, CancellationToken ct)
    {
        if (!_vms.TryGetValue(name, out var vm))
        {
            var paths = VmPaths.For(_options.RunDirectory, name);
            var record = ReadRecord(paths);
            if (record is null)
                return null;
            vm = new Vm(name, paths, record, ReadPid(paths) ?? 0);
            _vms[name] = vm;
            if (vm.IsAlive)
                Log.Adopted(_logger, name, vm.Pid);
        }
        if (vm.IsAlive && vm.Client is not { IsConnected: true })
        {
            try
            {
                await ConnectAsync(vm, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is QmpConnectionException or TimeoutException)
            {
                // Reported as VmState.Unknown by DescribeAsync; commands fail with the same error when they need QMP.
                Log.RunDirectoryEntryIgnored(_logger, name, $"QMP unreachable: {e.Message}");
            }
        }
        return vm;
    }

    private async Task<Vm> RequireAliveAsync(string name, CancellationToken ct)
    {
        var vm = await FindAsync(name, ct).ConfigureAwait(false) ?? throw new HypervisorException($"VM {name} is unknown on this host.");
        if (!vm.IsAlive)
            throw new HypervisorException($"VM {name} is not running ({ReadExitReason(vm) ?? "its process is gone"}).");
        return vm;
    }

    private async Task ConnectAsync(Vm vm, CancellationToken ct)
    {
        await vm.DisconnectAsync().ConfigureAwait(false);
        var client = await QmpClient.ConnectAsync(vm.Paths.Qmp, _options.Timeout, _logger, ct).ConfigureAwait(false);
        client.CommandTimeout = _options.Timeout;
        client.EventReceived += e => OnEvent(vm, e);
        vm.Client = client;
    }

    private void OnEvent(Vm vm, QmpEvent e)
    {
        Log.VmEvent(_logger, vm.Name, e.Name, e.Data.ValueKind == JsonValueKind.Undefined ? "" : e.Data.GetRawText());
        if (e.Name != "SHUTDOWN" || File.Exists(vm.Paths.ExitReason))
            return;
        // The driver writes its own reason before it ends a VM; this records what the guest or QEMU decided.
        var reason = e.Data.ValueKind == JsonValueKind.Object && e.Data.TryGetProperty("reason", out var r) ? r.GetString() : null;
        try
        {
            File.WriteAllText(vm.Paths.ExitReason, reason ?? "shutdown");
        }
        catch (IOException)
        {
            // The run directory went away with the VM (a finalized migration); nothing left to record into.
        }
    }

    private async Task<JsonElement> ExecuteAsync(Vm vm, string command, JsonObject? arguments, CancellationToken ct)
    {
        try
        {
            return await vm.Qmp().ExecuteAsync(command, arguments, _options.Timeout, ct).ConfigureAwait(false);
        }
        catch (QmpException e)
        {
            throw new HypervisorException($"VM {vm.Name}: {e.Message}", e);
        }
        catch (Exception e) when (e is QmpConnectionException or TimeoutException)
        {
            throw new HypervisorException($"VM {vm.Name}: no answer from QEMU: {e.Message}", e);
        }
    }

    private async Task<string> QueryStatusAsync(Vm vm, CancellationToken ct)
    {
        var reply = await vm.Qmp().ExecuteAsync("query-status", null, _options.Timeout, ct).ConfigureAwait(false);
        return reply.GetProperty("status").GetString() ?? "unknown";
    }

    private async Task<MigrationStatus> QueryMigrateAsync(Vm vm, CancellationToken ct) =>
        MigrationStatus.Parse(await ExecuteAsync(vm, "query-migrate", null, ct).ConfigureAwait(false));

    private async Task CancelAndWaitAsync(Vm vm, CancellationToken ct)
    {
        if ((await QueryMigrateAsync(vm, ct).ConfigureAwait(false)).IsFinished)
            return;
        await ExecuteAsync(vm, "migrate_cancel", null, ct).ConfigureAwait(false);
        var deadline = DateTime.UtcNow + _options.Timeout;
        while (true)
        {
            var migration = await QueryMigrateAsync(vm, ct).ConfigureAwait(false);
            if (migration.IsFinished || migration.State == MigrationState.None)
                return;
            if (DateTime.UtcNow > deadline)
                throw new HypervisorException($"VM {vm.Name}: migration still {migration.RawState} {_options.Timeout.TotalSeconds:0} s after migrate_cancel.");
            await Task.Delay(s_exitPoll, ct).ConfigureAwait(false);
        }
    }

    private async Task WaitForStatusAsync(Vm vm, string wanted, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + _options.Timeout;
        while (true)
        {
            var status = await QueryStatusAsync(vm, ct).ConfigureAwait(false);
            if (status == wanted)
                return;
            if (DateTime.UtcNow > deadline)
                throw new HypervisorException($"VM {vm.Name} is {status}, not {wanted}, after {_options.Timeout.TotalSeconds:0} s.");
            await Task.Delay(s_exitPoll, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Records <paramref name="reason"/>, asks QEMU to quit, and SIGKILLs it when it has not exited in 5 s.</summary>
    private async Task ForceOffAsync(Vm vm, string reason, CancellationToken ct)
    {
        File.WriteAllText(vm.Paths.ExitReason, reason);
        if (vm.Client is { IsConnected: true } client)
        {
            try
            {
                await client.ExecuteAsync("quit", null, TimeSpan.FromSeconds(5), ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is QmpConnectionException or TimeoutException or QmpException)
            {
                // QEMU may close the socket before its reply reaches us; SIGKILL below covers a QEMU that did not quit.
            }
        }
        if (!await WaitForExitAsync(vm, TimeSpan.FromSeconds(5), ct).ConfigureAwait(false))
        {
            Signal.Send(vm.Pid, Signal.Kill);
            if (!await WaitForExitAsync(vm, TimeSpan.FromSeconds(10), ct).ConfigureAwait(false))
                throw new HypervisorException($"VM {vm.Name}: QEMU pid {vm.Pid} survived SIGKILL for 10 s.");
        }
        await vm.DisconnectAsync().ConfigureAwait(false);
        Log.Stopped(_logger, vm.Name, reason);
    }

    private static async Task<bool> WaitForExitAsync(Vm vm, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (vm.IsAlive)
        {
            if (DateTime.UtcNow >= deadline)
                return false;
            await Task.Delay(s_exitPoll, ct).ConfigureAwait(false);
        }
        return true;
    }

    private void DeleteFiles(Vm vm)
    {
        _vms.TryRemove(vm.Name, out _);
        if (Directory.Exists(vm.Paths.Directory))
            Directory.Delete(vm.Paths.Directory, recursive: true);
    }

    private async Task<IDisposable> LockAsync(string name, CancellationToken ct)
    {
        var gate = _locks.GetOrAdd(name, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct).ConfigureAwait(false);
        return new Releaser(gate);
    }

    private static string? ReadExitReason(Vm vm)
    {
        try
        {
            return File.ReadAllText(vm.Paths.ExitReason).Trim();
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    private static int? ReadPid(VmPaths paths)
    {
        try
        {
            return int.TryParse(File.ReadAllText(paths.PidFile).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid > 0 ? pid : null;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    private static VmRecord? ReadRecord(VmPaths paths)
    {
        try
        {
            return JsonSerializer.Deserialize<VmRecord>(File.ReadAllText(paths.Record), s_json);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    private static void WriteRecord(VmPaths paths, VmRecord record)
    {
        var temp = paths.Record + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(record, s_json));
        File.Move(temp, paths.Record, overwrite: true);
    }

    /// <summary>
    /// True when <paramref name="pid"/> is a live (not zombie) process whose command line names <paramref name="qmpPath"/>:
    /// a recycled pid belongs to some other program and does not match.
    /// </summary>
    internal static bool IsQemuProcess(int pid, string qmpPath)
    {
        if (pid <= 0)
            return false;
        try
        {
            // A zombie has an empty cmdline, so it never matches: it is dead for our purposes.
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline");
            return cmdline.Contains($"path={QemuCommandLine.Escape(qmpPath)},", StringComparison.Ordinal);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>What <see cref="VmPaths.Record"/> holds.</summary>
    /// <param name="Incoming">The listen URI while the VM waits for or receives a migration.</param>
    internal sealed record VmRecord(VmSpec Spec, Accelerator Accelerator, string? Incoming);

    private sealed class Vm(string name, VmPaths paths, VmRecord record, int pid)
    {
        public string Name { get; } = name;

        public VmPaths Paths { get; } = paths;

        public VmRecord Record { get; set; } = record;

        public int Pid { get; } = pid;

        public QmpClient? Client { get; set; }

        public bool IsAlive => IsQemuProcess(Pid, Paths.Qmp);

        public QmpClient Qmp()
            => Client is { IsConnected: true } client
                ? client
                : throw new QmpConnectionException($"VM {Name}: no QMP connection to {Paths.Qmp}.");

        public async Task DisconnectAsync()
        {
            if (Client is { } client)
            {
                Client = null;
                await client.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private sealed class Releaser(SemaphoreSlim gate) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
                gate.Release();
        }
    }
}
