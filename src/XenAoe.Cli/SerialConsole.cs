using System.CommandLine;
using System.Diagnostics;
using System.Net.Sockets;

namespace XenAoe.Cli;

/// <summary>
/// <c>xenaoe console VM</c>: attaches the terminal to the VM's serial console (the hypervisor's unix socket on its host).
/// On a terminal, keys go to the guest raw and Ctrl-] detaches; with input from a pipe, the input is typed and the output
/// printed until the guest has been quiet for a moment after the input ends.
/// </summary>
internal static class SerialConsole
{
    private const byte DetachKey = 0x1D; // Ctrl-]
    private static readonly TimeSpan QuietAfterInput = TimeSpan.FromSeconds(1.5);

    public static Command Build(Option<string[]> hosts)
    {
        var name = new Argument<string>("name") { Description = "VM name" };
        var command = new Command("console", "Attach to a VM's serial console (Ctrl-] detaches); its VNC endpoint is in `xenaoe vm show`") { name, hosts };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            using var directory = HostDirectory.Open(parse.GetValue(hosts));
            var (_, vm) = await directory.FindVmAsync(parse.GetValue(name)!, ct);
            var path = vm.Consoles?.SerialSocketPath ?? throw new IOException($"VM {vm.Name} has no serial console (state {vm.State})");
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), ct);
            }
            catch (SocketException e)
            {
                throw new IOException($"cannot reach the serial console of {vm.Name} at {path} (is it on this machine, and is nobody else attached?): {e.Message}", e);
            }
            await AttachAsync(socket, vm.Name, ct);
        }));
        return command;
    }

    private static async Task AttachAsync(Socket socket, string vm, CancellationToken ct)
    {
        var terminal = !Console.IsInputRedirected;
        var saved = terminal ? Stty("-g").Trim() : null;
        if (terminal)
        {
            Console.Error.WriteLine($"Connected to {vm}'s serial console. Ctrl-] detaches.\r");
            Stty("raw -echo");
        }
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var lastOutput = Stopwatch.StartNew();
        try
        {
            var output = Task.Run(async () =>
            {
                var buffer = new byte[4096];
                using var stdout = Console.OpenStandardOutput();
                while (await socket.ReceiveAsync(buffer, stop.Token) is var n and > 0)
                {
                    await stdout.WriteAsync(buffer.AsMemory(0, n), stop.Token);
                    await stdout.FlushAsync(stop.Token);
                    lastOutput.Restart();
                }
            }, stop.Token);
            var input = Task.Run(async () =>
            {
                var buffer = new byte[1024];
                using var stdin = Console.OpenStandardInput();
                while (await stdin.ReadAsync(buffer, stop.Token) is var n and > 0)
                {
                    var detach = terminal ? Array.IndexOf(buffer, DetachKey, 0, n) : -1;
                    await socket.SendAsync(buffer.AsMemory(0, detach < 0 ? n : detach), stop.Token);
                    if (detach >= 0)
                        return;
                }
                // Piped input has ended: let the guest answer it, then leave.
                while (lastOutput.Elapsed < QuietAfterInput)
                    await Task.Delay(TimeSpan.FromMilliseconds(100), stop.Token);
            }, stop.Token);
            await Task.WhenAny(output, input);
            await stop.CancelAsync();
            try
            {
                await Task.WhenAll(output, input);
            }
            catch (OperationCanceledException)
            {
                // Detached or the console closed: both pumps end here.
            }
        }
        finally
        {
            if (saved is not null)
            {
                Stty(saved);
                Console.Error.WriteLine($"\nDetached from {vm}.");
            }
        }
    }

    /// <summary>Runs stty on the inherited terminal (raw mode for the console, then the saved settings back).</summary>
    private static string Stty(string arguments)
    {
        var info = new ProcessStartInfo("stty") { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var argument in arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            info.ArgumentList.Add(argument);
        using var process = Process.Start(info) ?? throw new IOException("stty could not start");
        var text = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return text;
    }
}
