using System.Diagnostics;
using System.Text;

namespace XenAoe.Nbd.Tests.Infrastructure;

public sealed record ToolResult(string CommandLine, int ExitCode, string StdOut, string StdErr)
{
    public ToolResult EnsureSuccess() => ExitCode == 0 ? this : throw new InvalidOperationException(ToString());

    public override string ToString() => $"`{CommandLine}` exited with {ExitCode}\n--- stdout ---\n{StdOut}\n--- stderr ---\n{StdErr}";
}

/// <summary>Runs an external program (no shell) to completion, output captured; kills it on timeout.</summary>
public static class Tool
{
    public static async Task<ToolResult> RunAsync(string file, IEnumerable<string> args, TimeSpan? timeout = null)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var arg in args)
            info.ArgumentList.Add(arg);
        var commandLine = string.Join(' ', [file, .. info.ArgumentList.Select(a => a.Contains(' ') || a.Contains('&') ? $"'{a}'" : a)]);
        using var process = new Process { StartInfo = info };
        try
        {
            process.Start();
        }
        catch (Exception e)
        {
            throw new InvalidOperationException($"could not start `{commandLine}` (is it installed? apt-get install fio nbdkit libnbd-bin qemu-utils): {e.Message}", e);
        }
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        var limit = timeout ?? TimeSpan.FromSeconds(60);
        using var cts = new CancellationTokenSource(limit);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"`{commandLine}` did not finish within {limit.TotalSeconds} s\n--- stdout ---\n{await stdout}\n--- stderr ---\n{await stderr}");
        }
        return new ToolResult(commandLine, process.ExitCode, await stdout, await stderr);
    }

    public static Task<ToolResult> RunAsync(string file, params string[] args) => RunAsync(file, (IEnumerable<string>)args);
}
