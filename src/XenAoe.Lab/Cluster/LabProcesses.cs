using System.Diagnostics;
using System.Text.RegularExpressions;

namespace XenAoe.Lab.Cluster;

/// <summary>
/// Starts and stops the lab's long-running daemons, each recorded in state.json (intent before the start, pid and start
/// time after) so that <see cref="LabNetwork.DownAsync"/> stops them even after the process that started them is gone.
/// A daemon runs as `setsid sh -c 'exec "$@" &gt;&gt;LOG 2&gt;&amp;1 &lt;/dev/null' ip netns exec NS FILE ARGS`: setsid, sh and ip
/// exec in place, so the recorded pid is the daemon's own; it leads a new session and process group (pgid = pid), so it
/// outlives the CLI and its children are signalled with it. Safe to use from several threads and processes (the state lock
/// serializes changes).
/// </summary>
public sealed partial class LabProcesses(string stateDirectory)
{
    /// <summary>Time a daemon gets between SIGTERM and SIGKILL unless told otherwise.</summary>
    public static readonly TimeSpan DefaultGrace = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan s_killWait = TimeSpan.FromSeconds(5);

    public string StateDirectory { get; } = stateDirectory;

    /// <summary>
    /// Starts <paramref name="file"/> inside network namespace <paramref name="ns"/> (a namespace of the recorded lab) as
    /// daemon <paramref name="name"/>, its stdout and stderr appended to <paramref name="logFile"/> (relative to the state
    /// directory; default logs/NAME.log). Returns the confirmed record.
    /// </summary>
    /// <exception cref="LabException">No lab is recorded, the namespace is not the lab's, a daemon of that name runs, or it exited at once.</exception>
    public async Task<LabProcessEntry> StartAsync(string ns, string name, string file, IReadOnlyList<string> args, string? logFile = null, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(file);
        ArgumentNullException.ThrowIfNull(args);
        if (!ProcessName().IsMatch(name))
            throw new ArgumentException($"Daemon name '{name}' must be letters, digits, '.', '_' or '-'.", nameof(name));
        await using var stateFile = await LabStateFile.OpenAsync(StateDirectory, createDirectory: false, ct).ConfigureAwait(false);
        var state = stateFile.State ?? throw new LabException($"No lab is recorded in {StateDirectory}: run `xenaoe lab up` first.");
        if (!state.Namespaces.Any(n => n.Name == ns && n.State == LabEntryState.Created))
            throw new LabException($"'{ns}' is not a namespace of the lab in {StateDirectory}.");
        if (state.Processes.FirstOrDefault(p => p.Name == name) is { } existing)
        {
            if (IsRunning(existing))
                throw new LabException($"Daemon '{name}' already runs (pid {existing.Pid} in {existing.Namespace}).");
            state.Processes.Remove(existing);
        }

        var log = Path.Combine(StateDirectory, logFile ?? Path.Combine("logs", name + ".log"));
        Directory.CreateDirectory(Path.GetDirectoryName(log)!);
        var entry = new LabProcessEntry
        {
            Name = name,
            Namespace = ns,
            File = file,
            Args = [.. args],
            LogFile = log,
            State = LabEntryState.Intended,
        };
        state.Processes.Add(entry);
        await stateFile.SaveAsync(ct).ConfigureAwait(false);

        // No redirection here: sh points stdout and stderr at the log before exec, and stdin at /dev/null, so the daemon
        // holds nothing of this process's and keeps running when it exits.
        var info = new ProcessStartInfo("setsid") { UseShellExecute = false };
        foreach (var arg in (string[])["sh", "-c", "log=$1; shift; exec \"$@\" >>\"$log\" 2>&1 </dev/null", "sh", log, "ip", "netns", "exec", ns, file, .. args])
            info.ArgumentList.Add(arg);
        int pid;
        using (var process = new Process { StartInfo = info })
        {
            try
            {
                process.Start();
            }
            catch (Exception e)
            {
                throw new LabException($"Could not start daemon '{name}' ({Command.FormatCommandLine(file, args)} in {ns}): {e.Message}", e);
            }
            pid = process.Id;
        }
        // Read at once: the start time is the process's from its fork, whatever it has exec'ed into since.
        var stat = ProcStat.Read(pid);
        entry.Pid = pid;
        entry.StartTime = stat?.StartTime;
        entry.StartedAt = DateTimeOffset.UtcNow;
        entry.State = LabEntryState.Created;
        await stateFile.SaveAsync(ct).ConfigureAwait(false);
        if (stat is not { Running: true })
            throw new LabException($"Daemon '{name}' ({Command.FormatCommandLine(file, args)} in {ns}) exited at once; see {log}.");
        return entry;
    }

    /// <summary>
    /// Stops daemon <paramref name="name"/>: SIGTERM to its process group, SIGKILL after <paramref name="grace"/> (default
    /// 10 s), and removes its record. Returns false when it was not running (a pid now used by another process is left alone).
    /// </summary>
    public async Task<bool> StopAsync(string name, TimeSpan? grace = null, CancellationToken ct = default)
    {
        await using var stateFile = await LabStateFile.OpenAsync(StateDirectory, createDirectory: false, ct).ConfigureAwait(false);
        if (stateFile.State?.Processes.FirstOrDefault(p => p.Name == name) is not { } entry)
            return false;
        var stopped = await StopAsync(entry, grace ?? DefaultGrace, ct).ConfigureAwait(false);
        stateFile.State.Processes.Remove(entry);
        await stateFile.SaveAsync(ct).ConfigureAwait(false);
        return stopped;
    }

    /// <summary>The recorded daemons; <see cref="IsRunning"/> tells which still run.</summary>
    public IReadOnlyList<LabProcessEntry> List() => LabStateFile.Read(StateDirectory)?.Processes ?? [];

    /// <summary>True when the recorded pid is still the process that was started (same start time) and has not exited.</summary>
    public static bool IsRunning(LabProcessEntry entry) =>
        entry is { Pid: { } pid, StartTime: { } start } && ProcStat.IsRunning(pid, start);

    /// <summary>Stops the recorded process if its pid still names it; false when it was not running.</summary>
    internal static async Task<bool> StopAsync(LabProcessEntry entry, TimeSpan grace, CancellationToken ct)
    {
        if (entry is not { Pid: { } pid, StartTime: { } start } || !ProcStat.IsRunning(pid, start))
            return false;
        await TerminateAsync(new ProcStat(pid, 'R', start), grace, ct).ConfigureAwait(false);
        return true;
    }

    /// <summary>
    /// SIGTERM, then SIGKILL after <paramref name="grace"/>, to the process and the process group it leads; every signal is
    /// sent only after checking that the pid still has the same start time.
    /// </summary>
    internal static async Task TerminateAsync(ProcStat process, TimeSpan grace, CancellationToken ct)
    {
        SignalIfSame(process, Signal.Terminate);
        if (await WaitGoneAsync(process, grace, ct).ConfigureAwait(false))
            return;
        SignalIfSame(process, Signal.Kill);
        if (!await WaitGoneAsync(process, s_killWait, ct).ConfigureAwait(false))
            throw new LabException($"Process {process.Pid} did not exit within {s_killWait.TotalSeconds} s of SIGKILL.");
    }

    private static void SignalIfSame(ProcStat process, int signal)
    {
        if (!ProcStat.IsRunning(process.Pid, process.StartTime))
            return;
        // The group first (the daemon's children, when it leads its group; ESRCH otherwise), then the process itself.
        _ = Signal.Send(-process.Pid, signal);
        _ = Signal.Send(process.Pid, signal);
    }

    private static async Task<bool> WaitGoneAsync(ProcStat process, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        while (ProcStat.IsRunning(process.Pid, process.StartTime))
        {
            if (deadline.Elapsed >= timeout)
                return false;
            await Task.Delay(TimeSpan.FromMilliseconds(20), ct).ConfigureAwait(false);
        }
        return true;
    }

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex ProcessName();
}
