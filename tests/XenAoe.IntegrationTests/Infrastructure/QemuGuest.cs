using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using XenAoe.Aoe;

namespace XenAoe.IntegrationTests.Infrastructure;

/// <summary>
/// A QEMU guest (TCG, serial console on stdio) whose only NIC is a TAP device in a lab's switch namespace.
/// Collects the serial console line by line; waits fail fast when the guest reports FAIL or QEMU exits.
/// </summary>
/// <remarks>Thread-safe. <see cref="DisposeAsync"/> kills QEMU by its PID (SIGKILL) if it is still running.</remarks>
public sealed class QemuGuest : IAsyncDisposable
{
    private const int TranscriptTailLines = 100;
    private readonly Process _process;
    private readonly Stopwatch _clock;
    private readonly List<GuestLine> _lines = [];
    private readonly Lock _gate = new();
    private readonly Task _readers;
    private readonly string _runtimeDirectory;
    private readonly string _qmpSocket;
    private TaskCompletionSource _changed = NewSignal();
    private bool _outputClosed;

    private QemuGuest(Process process, Stopwatch clock, string commandLine, string runtimeDirectory, string qmpSocket)
    {
        _runtimeDirectory = runtimeDirectory;
        _qmpSocket = qmpSocket;
        _process = process;
        _clock = clock;
        CommandLine = commandLine;
        Pid = process.Id;
        _readers = Task.WhenAll(ReadAsync(process.StandardOutput, ""), ReadAsync(process.StandardError, "qemu stderr: "))
            .ContinueWith(_ => Signal(closed: true), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>QEMU's process id (<c>ip netns exec</c> execs QEMU in place).</summary>
    public int Pid { get; }

    public string CommandLine { get; }

    /// <summary>Time since QEMU started.</summary>
    public TimeSpan Elapsed => _clock.Elapsed;

    public bool HasExited => _process.HasExited;

    /// <summary>A snapshot of the serial console so far.</summary>
    public IReadOnlyList<GuestLine> Lines
    {
        get
        {
            lock (_gate)
                return [.. _lines];
        }
    }

    /// <summary>The whole serial console so far, one timestamped line per line.</summary>
    public string Transcript => string.Join('\n', Lines);

    /// <summary>A random locally administered unicast MAC in QEMU's 52:54:00 range.</summary>
    public static MacAddress RandomMac() => new(0x5254_0000_0000UL | (uint)Random.Shared.Next(1, 0x00FF_FFFF));

    /// <summary>Boots <paramref name="initramfs"/> with the kernel it was built for.</summary>
    public static Task<QemuGuest> StartAsync(string switchNamespace, string tapName, GuestInitramfs initramfs, MacAddress? mac = null, int memoryMiB = 512) =>
        StartAsync(switchNamespace, tapName, initramfs.Kernel.VmlinuzPath, initramfs.Path, (mac ?? RandomMac()).ToString(), memoryMiB);

    public static Task<QemuGuest> StartAsync(string switchNamespace, string tapName, string kernel, string initramfs, MacAddress mac, int memoryMiB = 512) =>
        StartAsync(switchNamespace, tapName, kernel, initramfs, mac.ToString(), memoryMiB);

    /// <summary>
    /// Starts <c>qemu-system-x86_64 -accel tcg</c> inside <paramref name="switchNamespace"/> (the namespace that holds
    /// <paramref name="tapName"/>) with a virtio-net NIC on that TAP and the kernel console on the serial port.
    /// </summary>
    public static Task<QemuGuest> StartAsync(string switchNamespace, string tapName, string kernel, string initramfs, string mac, int memoryMiB = 512) =>
        StartAsync(switchNamespace, tapName, new QemuGuestOptions(kernel, initramfs) { Mac = mac, MemoryMiB = memoryMiB });

    /// <summary>
    /// Starts <c>qemu-system-x86_64 -accel tcg</c> inside <paramref name="switchNamespace"/> (the namespace that holds
    /// <paramref name="tapName"/>) with a virtio-net NIC on that TAP, the serial console on stdio and a QMP socket
    /// (<see cref="QmpAsync"/>), as <paramref name="options"/> say.
    /// </summary>
    public static Task<QemuGuest> StartAsync(string switchNamespace, string tapName, QemuGuestOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!File.Exists(options.Kernel))
            throw new FileNotFoundException("Guest kernel not found.", options.Kernel);
        if (!File.Exists(options.Initrd))
            throw new FileNotFoundException("Guest initramfs not found.", options.Initrd);
        foreach (var disk in options.Disks)
        {
            if (!File.Exists(disk))
                throw new FileNotFoundException("Guest disk image not found.", disk);
        }
        var runtime = Directory.CreateTempSubdirectory("xenaoe-qemu-").FullName;
        var qmp = Path.Combine(runtime, "qmp.sock");
        List<string> args =
        [
            "netns", "exec", switchNamespace,
            "qemu-system-x86_64", "-accel", "tcg", "-nographic",
            "-m", options.MemoryMiB.ToString(CultureInfo.InvariantCulture),
            "-kernel", options.Kernel, "-initrd", options.Initrd,
            "-append", options.Append,
            "-netdev", $"tap,id=n0,ifname={tapName},script=no,downscript=no",
            // romfile= skips the NIC's iPXE option ROM: nothing boots from the network, and the boot is faster.
            "-device", $"virtio-net-pci,netdev=n0,mac={options.Mac ?? RandomMac().ToString()},romfile=",
            "-qmp", $"unix:{qmp},server=on,wait=off",
        ];
        if (options.ExitOnReboot)
            args.Add("-no-reboot");
        foreach (var disk in options.Disks)
            args.AddRange(["-drive", $"file={disk},format=raw,if=virtio"]);
        var start = new ProcessStartInfo("ip")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
            UseShellExecute = false,
        };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        var clock = Stopwatch.StartNew();
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("Could not start ip netns exec qemu-system-x86_64.");
        }
        catch
        {
            Directory.Delete(runtime, recursive: true);
            throw;
        }
        if (!options.Console)
        {
            // QEMU gets EOF on its stdio console at once: nothing types into the guest.
            process.StandardInput.Close();
        }
        return Task.FromResult(new QemuGuest(process, clock, "ip " + string.Join(' ', args), runtime, qmp));
    }

    /// <summary>Types <paramref name="line"/> and Enter on the serial console (needs <see cref="QemuGuestOptions.Console"/>).</summary>
    public async Task SendLineAsync(string line, CancellationToken ct = default)
    {
        var input = _process.StandardInput;
        if (!input.BaseStream.CanWrite)
            throw new InvalidOperationException("The guest was started without QemuGuestOptions.Console: its console input is closed.");
        await input.WriteAsync((line + "\n").AsMemory(), ct).ConfigureAwait(false);
        await input.FlushAsync(ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs one QMP command (e.g. <c>system_reset</c>, <c>system_powerdown</c>) on a fresh connection to QEMU's QMP socket and
    /// returns QEMU's reply line (<c>{"return": ...}</c>).
    /// </summary>
    /// <exception cref="GuestException">QEMU answered with an error or closed the connection.</exception>
    public async Task<string> QmpAsync(string command, CancellationToken ct = default)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(_qmpSocket), ct).ConfigureAwait(false);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        await using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
        _ = await reader.ReadLineAsync(ct).ConfigureAwait(false); // the greeting
        await writer.WriteLineAsync("{\"execute\":\"qmp_capabilities\"}".AsMemory(), ct).ConfigureAwait(false);
        await ReadReplyAsync("qmp_capabilities").ConfigureAwait(false);
        await writer.WriteLineAsync(JsonSerializer.Serialize(new Dictionary<string, string> { ["execute"] = command }).AsMemory(), ct).ConfigureAwait(false);
        return await ReadReplyAsync(command).ConfigureAwait(false);

        async Task<string> ReadReplyAsync(string what)
        {
            // Events ({"event": ...}) may come before the reply; the reply is the first line with "return" or "error".
            while (await reader.ReadLineAsync(ct).ConfigureAwait(false) is { } line)
            {
                using var json = JsonDocument.Parse(line);
                if (json.RootElement.TryGetProperty("return", out _))
                    return line;
                if (json.RootElement.TryGetProperty("error", out _))
                    throw Failure($"QMP {what} failed: {line}");
            }
            throw Failure($"QEMU closed its QMP socket before answering {what}.");
        }
    }

    /// <summary>Waits for the first line (from the start of the transcript) that begins with <paramref name="prefix"/>.</summary>
    /// <exception cref="GuestException">The guest reported FAIL, QEMU exited, or <paramref name="timeout"/> passed first.</exception>
    public Task<GuestLine> WaitForLineAsync(string prefix, TimeSpan timeout, CancellationToken ct = default) =>
        WaitForLineAsync(line => line.Text.StartsWith(prefix, StringComparison.Ordinal), $"a line starting with '{prefix}'", timeout, ct);

    /// <summary>Waits for the first line (from the start of the transcript) that <paramref name="match"/> accepts.</summary>
    /// <param name="expectation">Says what was awaited, for the failure message.</param>
    public Task<GuestLine> WaitForLineAsync(Func<GuestLine, bool> match, string expectation, TimeSpan timeout, CancellationToken ct = default) =>
        WaitCoreAsync(match, expectation, timeout, failFast: true, ct);

    private async Task<GuestLine> WaitCoreAsync(Func<GuestLine, bool> match, string expectation, TimeSpan timeout, bool failFast, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        var next = 0;
        while (true)
        {
            Task changed;
            GuestLine? failed = null;
            lock (_gate)
            {
                for (; next < _lines.Count && failed is null; next++)
                {
                    var line = _lines[next];
                    if (match(line))
                        return line;
                    if (failFast && line.Text.StartsWith(GuestInit.FailTag, StringComparison.Ordinal))
                        failed = line;
                }
                if (failed is null && _outputClosed)
                    throw Failure($"Expected {expectation}, but QEMU exited (code {ExitCodeText()}) without printing it.");
                changed = _changed.Task;
            }
            if (failed is not null)
            {
                // The guest prints its dmesg tail and the driver's debugfs view after the verdict: keep them for the message.
                await WaitForDiagnosticsAsync().ConfigureAwait(false);
                throw Failure($"Expected {expectation}, but the guest reported: {failed.Text}");
            }
            try
            {
                await changed.WaitAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw Failure($"Expected {expectation} within {timeout.TotalSeconds:F0} s of waiting ({_clock.Elapsed.TotalSeconds:F1} s after QEMU started); it did not appear.");
            }
        }
    }

    private async Task WaitForDiagnosticsAsync()
    {
        try
        {
            await WaitCoreAsync(line => line.Text.StartsWith(GuestInit.DoneTag, StringComparison.Ordinal), "the guest's power-off line", TimeSpan.FromSeconds(10), failFast: false, CancellationToken.None).ConfigureAwait(false);
        }
        catch (GuestException)
        {
            // Diagnostics are best effort: the FAIL line is the verdict either way.
        }
    }

    /// <summary>Waits for QEMU to exit (the guest powers off after its script) and returns QEMU's exit code.</summary>
    /// <exception cref="GuestException">QEMU is still running after <paramref name="timeout"/>.</exception>
    public async Task<int> WaitForExitAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        try
        {
            await _process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
            await _readers.WaitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw Failure($"Expected QEMU (pid {Pid}) to exit within {timeout.TotalSeconds:F0} s; it is still running.");
        }
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
                _process.Kill();
        }
        catch (InvalidOperationException)
        {
            // It exited between the check and the kill: nothing left to stop.
        }
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await _process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
            await _readers.WaitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // SIGKILL cannot be ignored; a QEMU stuck in the kernel is beyond what disposal can fix.
        }
        _process.Dispose();
        if (Directory.Exists(_runtimeDirectory))
            Directory.Delete(_runtimeDirectory, recursive: true);
    }

    private async Task ReadAsync(StreamReader reader, string label)
    {
        while (await reader.ReadLineAsync().ConfigureAwait(false) is { } raw)
        {
            // The guest's tags can follow terminal control sequences or half a kernel message on the same line.
            var tag = raw.IndexOf("XENAOE-", StringComparison.Ordinal);
            var text = tag > 0 ? raw[tag..] : label + raw;
            if (text.Length == 0)
                continue;
            lock (_gate)
                _lines.Add(new GuestLine(_lines.Count, text, _clock.Elapsed));
            Signal(closed: false);
        }
    }

    private void Signal(bool closed)
    {
        TaskCompletionSource fired;
        lock (_gate)
        {
            _outputClosed |= closed;
            fired = _changed;
            _changed = NewSignal();
        }
        fired.TrySetResult();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private string ExitCodeText() => _process.HasExited ? _process.ExitCode.ToString(CultureInfo.InvariantCulture) : "unknown";

    private GuestException Failure(string message)
    {
        var lines = Lines;
        var tail = lines.Skip(Math.Max(0, lines.Count - TranscriptTailLines));
        return new GuestException($"{message}\nLast {Math.Min(lines.Count, TranscriptTailLines)} of {lines.Count} console lines:\n{string.Join('\n', tail)}");
    }
}

/// <summary>How <see cref="QemuGuest.StartAsync(string, string, QemuGuestOptions)"/> runs QEMU.</summary>
/// <param name="Kernel">The kernel image for <c>-kernel</c>.</param>
/// <param name="Initrd">The initramfs for <c>-initrd</c>.</param>
public sealed record QemuGuestOptions(string Kernel, string Initrd)
{
    /// <summary>The kernel command line (<c>-append</c>).</summary>
    public string Append { get; init; } = "console=ttyS0 panic=-1 quiet";

    /// <summary>The NIC's MAC ("52:54:00:..."); a random one when <see langword="null"/>.</summary>
    public string? Mac { get; init; }

    public int MemoryMiB { get; init; } = 512;

    /// <summary>Raw image files attached as virtio disks, in order (<c>/dev/vda</c>, <c>/dev/vdb</c>, ...). QEMU writes into them.</summary>
    public IReadOnlyList<string> Disks { get; init; } = [];

    /// <summary>QEMU exits when the guest reboots (<c>-no-reboot</c>); false lets the guest reboot in place.</summary>
    public bool ExitOnReboot { get; init; } = true;

    /// <summary>Keeps QEMU's stdin open so <see cref="QemuGuest.SendLineAsync"/> can type on the serial console.</summary>
    public bool Console { get; init; }
}

/// <summary>A guest did not do what a test waited for; the message carries the end of its console transcript.</summary>
public sealed class GuestException(string message) : Exception(message);
