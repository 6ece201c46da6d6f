using System.Collections.Concurrent;
using System.Globalization;
using XenAoe.Os;

namespace XenAoe.Hypervisors.Xen;

public sealed class XlDriverOptions
{
    /// <summary>Where the generated <c>NAME.cfg</c> files are kept (xl needs the file at create time; kept for inspection).</summary>
    public required string ConfigDirectory { get; init; }

    /// <summary>The toolstack binary, looked up in PATH unless it is a path.</summary>
    public string XlBinary { get; init; } = "xl";

    /// <summary>The host bridge every vif joins.</summary>
    public string Bridge { get; init; } = "xenbr0";

    /// <summary>Passed to <c>xl migrate -s</c>; null uses xl's default (<c>ssh</c>).</summary>
    public string? MigrateSshCommand { get; init; }

    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>
/// Xen through the <c>xl</c> toolstack: writes an xl.cfg per VM (<see cref="XlConfig"/>) and wraps <c>xl create,
/// shutdown, destroy, reboot, list, migrate</c>. Untested against a real Xen (none runs on the lab machines); every
/// call fails with a <see cref="HypervisorException"/> saying so when <c>xl</c> is not installed.
/// </summary>
/// <remarks>
/// xl migrates in one command that reaches the destination over ssh (<c>xl migrate-receive</c> runs there), so
/// <see cref="PrepareIncomingAsync"/> only checks the destination, <see cref="MigrateAsync"/> runs <c>xl migrate</c> in
/// the background and <see cref="MigrationStatusAsync"/> reports Active until it exits (no byte counts or downtime).
/// The serial console is a pty reached with <c>xl console NAME</c>, reported as such in <see cref="VmConsoles"/>.
/// </remarks>
public sealed class XlDriver : IHypervisorDriver
{
    private readonly XlDriverOptions _options;
    private readonly Func<IReadOnlyList<string>, CancellationToken, Task<CommandResult>> _run;
    private readonly ConcurrentDictionary<string, Migration> _migrations = new(StringComparer.Ordinal);
    private readonly bool _realBinary;

    public XlDriver(XlDriverOptions options)
        : this(options, null)
    {
    }

    /// <param name="run">Runs xl with the given arguments; tests pass a fake, null runs the real binary.</param>
    internal XlDriver(XlDriverOptions options, Func<IReadOnlyList<string>, CancellationToken, Task<CommandResult>>? run)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _realBinary = run is null;
        _run = run ?? RunXlAsync;
    }

    /// <summary>Why xl cannot be used here, or null when the binary is found.</summary>
    public string? UnavailableReason => FindBinary(_options.XlBinary) is null
        ? $"xl is not installed on this host ('{_options.XlBinary}' is not in PATH): the Xen driver needs the Xen toolstack (package xen-utils) and a Xen dom0."
        : null;

    public async Task<VmInfo> StartAsync(VmSpec spec, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var config = XlConfig.Generate(spec, _options.Bridge);
        Directory.CreateDirectory(_options.ConfigDirectory);
        var path = ConfigPath(spec.Name);
        await File.WriteAllTextAsync(path, config, ct).ConfigureAwait(false);
        await XlAsync(["create", path], ct).ConfigureAwait(false);
        return await InfoAsync(spec.Name, ct).ConfigureAwait(false) ?? throw new HypervisorException($"VM {spec.Name}: xl create succeeded but xl list does not show it.");
    }

    public async Task<StopOutcome> StopAsync(string name, TimeSpan graceful, CancellationToken ct = default)
    {
        if (await FindDomainAsync(name, ct).ConfigureAwait(false) is null)
            return StopOutcome.AlreadyStopped;
        await XlAsync(["shutdown", name], ct).ConfigureAwait(false);
        var deadline = DateTime.UtcNow + graceful;
        while (DateTime.UtcNow < deadline)
        {
            if (await FindDomainAsync(name, ct).ConfigureAwait(false) is null)
                return StopOutcome.Graceful;
            await Task.Delay(TimeSpan.FromMilliseconds(250), ct).ConfigureAwait(false);
        }
        await XlAsync(["destroy", name], ct).ConfigureAwait(false);
        return StopOutcome.Forced;
    }

    public async Task KillAsync(string name, CancellationToken ct = default)
    {
        if (await FindDomainAsync(name, ct).ConfigureAwait(false) is not null)
            await XlAsync(["destroy", name], ct).ConfigureAwait(false);
    }

    /// <summary><c>xl reboot -F</c>: asks the guest, and falls back to an ACPI event when it has no PV drivers.</summary>
    public Task RebootAsync(string name, CancellationToken ct = default) => XlAsync(["reboot", "-F", name], ct);

    public async Task<IReadOnlyList<VmInfo>> ListAsync(CancellationToken ct = default)
    {
        var domains = ParseList((await XlAsync(["list"], ct).ConfigureAwait(false)).StdOut);
        return domains.Where(d => d.Name != "Domain-0").Select(ToInfo).ToList();
    }

    public async Task<VmInfo?> InfoAsync(string name, CancellationToken ct = default) =>
        await FindDomainAsync(name, ct).ConfigureAwait(false) is { } domain ? ToInfo(domain) : null;

    /// <summary>Checks that xl runs here; the receiving side is started by the source's <c>xl migrate</c> over ssh.</summary>
    public async Task<VmInfo> PrepareIncomingAsync(VmSpec spec, string listenUri, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate();
        await XlAsync(["info"], ct).ConfigureAwait(false);
        var consoles = Consoles(spec.Name);
        return new VmInfo(spec.Name, spec.Uuid, VmState.Incoming, $"xl migrate-receive is started by the source over ssh ({listenUri} is not used by xl)", null, Accelerator.Auto, spec.Cpus, spec.MemoryMiB, consoles);
    }

    /// <param name="destinationUri">The destination host as ssh reaches it.</param>
    public Task MigrateAsync(string name, string destinationUri, MigrationOptions? options = null, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(destinationUri);
        EnsureInstalled();
        var args = new List<string> { "migrate" };
        if (_options.MigrateSshCommand is { } ssh)
            args.AddRange(["-s", ssh]);
        args.AddRange([name, destinationUri]);
        var cancel = new CancellationTokenSource();
        var started = DateTime.UtcNow;
        var run = _run(args, cancel.Token);
        _migrations[name] = new Migration(run, cancel, started);
        return Task.CompletedTask;
    }

    public Task<MigrationStatus> MigrationStatusAsync(string name, CancellationToken ct = default)
    {
        if (!_migrations.TryGetValue(name, out var migration))
            return Task.FromResult(MigrationStatus.None);
        var task = migration.Run;
        var elapsed = DateTime.UtcNow - migration.Started;
        MigrationStatus status = !task.IsCompleted
            ? new(MigrationState.Active, "xl migrate running", elapsed, null, null, null, null, null, null)
            : task.IsCanceled || migration.Cancel.IsCancellationRequested
                ? new(MigrationState.Cancelled, "cancelled", null, null, null, null, null, null, "xl migrate was killed")
                : task.IsFaulted
                    ? new(MigrationState.Failed, "failed", null, null, null, null, null, null, task.Exception!.GetBaseException().Message)
                    : task.Result.Succeeded
                        ? new(MigrationState.Completed, "completed", null, null, null, null, null, null, null)
                        : new(MigrationState.Failed, "failed", null, null, null, null, null, null, task.Result.StdErr.Trim());
        return Task.FromResult(status);
    }

    /// <summary>Kills the <c>xl migrate</c> process; xl resumes the domain on the source when its migration fails.</summary>
    public async Task CancelMigrationAsync(string name, CancellationToken ct = default)
    {
        if (_migrations.TryGetValue(name, out var migration))
        {
            await migration.Cancel.CancelAsync().ConfigureAwait(false);
            try
            {
                await migration.Run.WaitAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                // The cancellation asked for; the status reports Cancelled.
            }
        }
    }

    public async Task FinalizeSourceAsync(string name, bool succeeded, CancellationToken ct = default)
    {
        _migrations.TryRemove(name, out _);
        if (succeeded)
            return; // xl migrate destroys the source domain itself once the destination runs.
        if (await FindDomainAsync(name, ct).ConfigureAwait(false) is { } domain && domain.State.Contains('p', StringComparison.Ordinal))
            await XlAsync(["unpause", name], ct).ConfigureAwait(false);
    }

    public async Task FinalizeDestinationAsync(string name, bool succeeded, CancellationToken ct = default)
    {
        if (!succeeded && await FindDomainAsync(name, ct).ConfigureAwait(false) is not null)
            await XlAsync(["destroy", name], ct).ConfigureAwait(false);
    }

    /// <summary>One row of <c>xl list</c>.</summary>
    internal sealed record Domain(string Name, int Id, int MemoryMiB, int Vcpus, string State);

    /// <summary>Parses <c>xl list</c>: a header line, then <c>NAME ID MEM VCPUS STATE TIME</c> per domain.</summary>
    internal static IReadOnlyList<Domain> ParseList(string output)
    {
        var domains = new List<Domain>();
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Skip(1))
        {
            var fields = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 5
                && int.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out var id)
                && int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var memory)
                && int.TryParse(fields[3], NumberStyles.None, CultureInfo.InvariantCulture, out var vcpus))
            {
                domains.Add(new Domain(fields[0], id, memory, vcpus, fields[4]));
            }
        }
        return domains;
    }

    /// <summary>xl's state flags: r running, b blocked (idle, still running), p paused, s shut down, c crashed, d dying.</summary>
    internal static VmState MapState(string flags) =>
        flags.Contains('c', StringComparison.Ordinal) ? VmState.Crashed
        : flags.Contains('s', StringComparison.Ordinal) || flags.Contains('d', StringComparison.Ordinal) ? VmState.Stopped
        : flags.Contains('p', StringComparison.Ordinal) ? VmState.Paused
        : VmState.Running;

    private VmInfo ToInfo(Domain domain) =>
        new(domain.Name, Guid.Empty, MapState(domain.State), $"xl state {domain.State}, domid {domain.Id}", null, Accelerator.Auto, domain.Vcpus, domain.MemoryMiB, Consoles(domain.Name));

    private static VmConsoles Consoles(string name) =>
        new($"pty: xl console {name}", $"/var/log/xen/console/guest-{name}.log", $"xl vncviewer {name}");

    private async Task<Domain?> FindDomainAsync(string name, CancellationToken ct) =>
        ParseList((await XlAsync(["list"], ct).ConfigureAwait(false)).StdOut).FirstOrDefault(d => d.Name == name);

    private async Task<CommandResult> XlAsync(IReadOnlyList<string> args, CancellationToken ct)
    {
        EnsureInstalled();
        var result = await _run(args, ct).ConfigureAwait(false);
        return result.Succeeded ? result : throw new HypervisorException($"xl {string.Join(' ', args)} failed (exit {result.ExitCode}): {result.StdErr.Trim()}");
    }

    private void EnsureInstalled()
    {
        // Tests with a fake runner do not need the binary.
        if (_realBinary && UnavailableReason is { } reason)
            throw new HypervisorException(reason);
    }

    private Task<CommandResult> RunXlAsync(IReadOnlyList<string> args, CancellationToken ct) =>
        Command.RunAsync(_options.XlBinary, args, args.Count > 0 && args[0] == "migrate" ? TimeSpan.FromHours(1) : _options.Timeout, ct);

    private string ConfigPath(string name) => Path.Combine(_options.ConfigDirectory, name + ".cfg");

    private static string? FindBinary(string binary)
    {
        if (binary.Contains('/', StringComparison.Ordinal))
            return File.Exists(binary) ? binary : null;
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(directory, binary);
            if (File.Exists(candidate))
                return candidate;
        }
        return null;
    }

    private sealed record Migration(Task<CommandResult> Run, CancellationTokenSource Cancel, DateTime Started);
}
