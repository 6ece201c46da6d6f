using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace XenAoe.IntegrationTests.Infrastructure;

/// <summary>
/// A long-running process started through a <see cref="NetworkLab"/>, as `setsid ip netns exec NS FILE ARGS`: setsid and
/// ip both exec in place, so <see cref="Pid"/> is FILE's, and FILE leads a process group of its own (pgid = pid) that its
/// children inherit. Its stdout and stderr are captured as they arrive, partial lines included; stdin stays open until
/// disposal. Killing sends SIGKILL to that process group and to the process tree, so children orphaned by an earlier
/// signal die too.
/// </summary>
public sealed class LabProcess : IAsyncDisposable
{
    private static readonly TimeSpan s_killGrace = TimeSpan.FromSeconds(10);

    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly Lock _lock = new();
    private readonly List<(string Text, TaskCompletionSource Done)> _waiters = [];
    private readonly Task _readers;
    private int _disposed;
    private volatile bool _released;
    private int? _exitCodeAfterDispose;

    internal LabProcess(string file, IReadOnlyList<string> args, string description)
    {
        Description = description;
        CommandLine = Command.FormatCommandLine(file, args);
        // setsid(1) calls setsid(2) and execs without forking, because a child of this process is not a group leader.
        var info = new ProcessStartInfo("setsid")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(file);
        foreach (var arg in args)
            info.ArgumentList.Add(arg);
        _process = new Process { StartInfo = info, EnableRaisingEvents = true };
        try
        {
            _process.Start();
        }
        catch (Exception e)
        {
            throw new InvalidOperationException($"Could not start `{CommandLine}`: {e.Message}", e);
        }
        Pid = _process.Id;
        _readers = Task.WhenAll(
            Task.Run(() => PumpAsync(_process.StandardOutput.BaseStream)),
            Task.Run(() => PumpAsync(_process.StandardError.BaseStream)));
        _ = _readers.ContinueWith(_ => FailWaitersAfterExit(), TaskScheduler.Default);
    }

    public int Pid { get; }

    /// <summary>What this process is in the lab, e.g. "vblade in xt1a2b3-target".</summary>
    public string Description { get; }

    public string CommandLine { get; }

    /// <summary>Everything written to stdout and stderr so far, interleaved in arrival order.</summary>
    public string Output
    {
        get
        {
            lock (_lock)
                return _output.ToString();
        }
    }

    public bool HasExited => _released || _process.HasExited;

    /// <summary>Exit code, or null while running.</summary>
    public int? ExitCode => _released ? _exitCodeAfterDispose : _process.HasExited ? _process.ExitCode : null;

    /// <summary>Completes when <paramref name="text"/> has appeared in <see cref="Output"/>.</summary>
    /// <exception cref="TimeoutException">Not within <paramref name="timeout"/>; the message has the output so far.</exception>
    /// <exception cref="InvalidOperationException">The process ended without printing it.</exception>
    public async Task WaitForOutputAsync(string text, TimeSpan timeout, CancellationToken ct = default)
    {
        TaskCompletionSource done;
        lock (_lock)
        {
            if (_output.ToString().Contains(text, StringComparison.Ordinal))
                return;
            done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((text, done));
        }
        if (_readers.IsCompleted)
            FailWaitersAfterExit();
        try
        {
            await done.Task.WaitAsync(timeout, ct).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"Expected {Description} to print \"{text}\" within {timeout.TotalSeconds:0.###} s. Output so far:\n{Output}");
        }
        finally
        {
            lock (_lock)
                _waiters.RemoveAll(w => w.Done == done);
        }
    }

    /// <summary>Writes to the process's stdin.</summary>
    public async Task WriteInputAsync(string text)
    {
        await _process.StandardInput.WriteAsync(text).ConfigureAwait(false);
        await _process.StandardInput.FlushAsync().ConfigureAwait(false);
    }

    /// <summary>Sends a signal to the process only (not its children) and returns at once.</summary>
    public void Signal(int signal)
    {
        if (!_process.HasExited && !XenAoe.Os.Signal.Send(Pid, signal) && !_process.HasExited)
            throw new InvalidOperationException($"kill({Pid}, {signal}) for {Description} failed: {Marshal.GetLastPInvokeErrorMessage()}");
    }

    /// <summary>
    /// Ends the process: SIGKILL (the default) goes to its process group and process tree; any other signal goes to the
    /// process, and if it has not exited after 10 s the group and tree are killed. Completes when the process has exited.
    /// </summary>
    public async Task KillAsync(int signal = XenAoe.Os.Signal.Kill)
    {
        if (_process.HasExited)
        {
            KillGroup();
            return;
        }
        if (signal != XenAoe.Os.Signal.Kill)
        {
            Signal(signal);
            using var grace = new CancellationTokenSource(s_killGrace);
            try
            {
                await _process.WaitForExitAsync(grace.Token).ConfigureAwait(false);
                KillGroup();
                return;
            }
            catch (OperationCanceledException)
            {
                // It ignored the signal; kill the tree below.
            }
        }
        KillGroup();
        Command.KillTree(_process);
        using var wait = new CancellationTokenSource(s_killGrace);
        try
        {
            await _process.WaitForExitAsync(wait.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            throw new InvalidOperationException($"{Description} (pid {Pid}) did not exit within {s_killGrace.TotalSeconds} s of SIGKILL.");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        try
        {
            await KillAsync().ConfigureAwait(false);
        }
        finally
        {
            // Output pipes end with the process; a grandchild that kept them open is not waited for past a few seconds.
            await Task.WhenAny(_readers, Task.Delay(TimeSpan.FromSeconds(3))).ConfigureAwait(false);
            _exitCodeAfterDispose = _process.HasExited ? _process.ExitCode : null;
            _released = true;
            _process.Dispose();
        }
    }

    public override string ToString() => $"{Description} (pid {Pid}): {CommandLine}";

    /// <summary>SIGKILL to the process group this process leads; members left behind by the leader's exit go too.</summary>
    private void KillGroup()
    {
        // ESRCH (the group is empty) is the normal outcome once everything has exited.
        _ = XenAoe.Os.Signal.Send(-Pid, XenAoe.Os.Signal.Kill);
    }

    private async Task PumpAsync(Stream stream)
    {
        var decoder = Encoding.UTF8.GetDecoder();
        var bytes = new byte[4096];
        var chars = new char[Encoding.UTF8.GetMaxCharCount(bytes.Length)];
        try
        {
            int read;
            while ((read = await stream.ReadAsync(bytes).ConfigureAwait(false)) > 0)
            {
                var count = decoder.GetChars(bytes, 0, read, chars, 0, flush: false);
                Append(chars.AsSpan(0, count));
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // The pipe was torn down with the process: the output ends here.
        }
    }

    private void Append(ReadOnlySpan<char> text)
    {
        List<TaskCompletionSource>? ready = null;
        lock (_lock)
        {
            _output.Append(text);
            if (_waiters.Count == 0)
                return;
            var all = _output.ToString();
            foreach (var (waited, done) in _waiters)
            {
                if (all.Contains(waited, StringComparison.Ordinal))
                    (ready ??= []).Add(done);
            }
        }
        if (ready is not null)
        {
            foreach (var done in ready)
                done.TrySetResult();
        }
    }

    private void FailWaitersAfterExit()
    {
        List<(string Text, TaskCompletionSource Done)> pending;
        string output;
        lock (_lock)
        {
            output = _output.ToString();
            pending = [.. _waiters];
        }
        foreach (var (text, done) in pending)
        {
            if (output.Contains(text, StringComparison.Ordinal))
                done.TrySetResult();
            else
                done.TrySetException(new InvalidOperationException(
                    $"{Description} closed its output{ExitText()} without printing \"{text}\". Output:\n{output}"));
        }
    }

    private string ExitText()
    {
        try
        {
            return _process.WaitForExit(TimeSpan.FromSeconds(1)) ? $" and exited with {_process.ExitCode}" : "";
        }
        catch (InvalidOperationException)
        {
            return "";
        }
    }
}
