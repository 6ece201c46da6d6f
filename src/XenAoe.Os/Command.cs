using System.Diagnostics;
using System.Text;

namespace XenAoe.Os;

/// <summary>The outcome of a finished command.</summary>
public sealed record CommandResult(int ExitCode, string StdOut, string StdErr)
{
    /// <summary>The command line, for messages.</summary>
    public string CommandLine { get; init; } = "";

    public bool Succeeded => ExitCode == 0;

    /// <summary>Returns this result when the exit code is 0, else throws with the command line and both outputs.</summary>
    public CommandResult EnsureSuccess() =>
        ExitCode == 0 ? this : throw new CommandFailedException(this);

    public override string ToString() =>
        $"`{CommandLine}` exited with {ExitCode}\n--- stdout ---\n{StdOut}\n--- stderr ---\n{StdErr}";
}

public sealed class CommandFailedException(CommandResult result) : Exception(result.ToString())
{
    public CommandResult Result { get; } = result;
}

/// <summary>Runs a program to completion with its output captured.</summary>
public static class Command
{
    /// <summary>Used when no timeout is given.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Runs <paramref name="file"/> with <paramref name="args"/> (no shell) and returns its exit code and outputs.
    /// On timeout or cancellation the whole process tree is killed and a <see cref="TimeoutException"/> /
    /// <see cref="OperationCanceledException"/> says so, with the output captured until then.
    /// </summary>
    public static async Task<CommandResult> RunAsync(string file, IEnumerable<string> args, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var argList = args.ToList();
        var commandLine = FormatCommandLine(file, argList);
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var arg in argList)
            info.ArgumentList.Add(arg);

        using var process = new Process { StartInfo = info };
        try
        {
            process.Start();
        }
        catch (Exception e)
        {
            throw new InvalidOperationException($"Could not start `{commandLine}`: {e.Message}", e);
        }
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);

        var limit = timeout ?? DefaultTimeout;
        using var timeoutCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeoutCts.CancelAfter(limit);
        try
        {
            await process.WaitForExitAsync(timeoutCts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            KillTree(process);
            var (partialOut, partialErr) = await PartialOutputAsync(stdout, stderr).ConfigureAwait(false);
            var what = ct.IsCancellationRequested ? "was cancelled" : $"did not finish within {limit.TotalSeconds:0.#} s";
            var message = $"`{commandLine}` {what}; its process tree was killed.\n--- stdout ---\n{partialOut}\n--- stderr ---\n{partialErr}";
            if (ct.IsCancellationRequested)
                throw new OperationCanceledException(message, ct);
            throw new TimeoutException(message);
        }

        // The pipes close when the process and everything that inherited them exit; a daemon child holding them is not waited for.
        var (outText, errText) = await PartialOutputAsync(stdout, stderr).ConfigureAwait(false);
        return new CommandResult(process.ExitCode, outText, errText) { CommandLine = commandLine };
    }

    public static Task<CommandResult> RunAsync(string file, params string[] args) => RunAsync(file, (IEnumerable<string>)args);

    public static string FormatCommandLine(string file, IEnumerable<string> args) =>
        string.Join(' ', new[] { file }.Concat(args).Select(a => a.Length == 0 || a.Any(char.IsWhiteSpace) ? $"'{a}'" : a));

    public static void KillTree(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already exited: nothing to kill.
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // The process exited between the check and the signal.
        }
    }

    private static async Task<(string, string)> PartialOutputAsync(Task<string> stdout, Task<string> stderr)
    {
        var both = Task.WhenAll(stdout, stderr);
        await Task.WhenAny(both, Task.Delay(TimeSpan.FromSeconds(5))).ConfigureAwait(false);
        return (stdout.IsCompletedSuccessfully ? stdout.Result : "(still open)", stderr.IsCompletedSuccessfully ? stderr.Result : "(still open)");
    }
}
