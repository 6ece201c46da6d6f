using System.Diagnostics;
using System.Globalization;

namespace XenAoe.IntegrationTests.Infrastructure;

/// <summary>The AoE target a scenario asks for: serve <see cref="VolumePath"/> as e<see cref="Shelf"/>.<see cref="Slot"/> on <see cref="Nic"/>.</summary>
public sealed record AoeTargetSpec(int Shelf, int Slot, string Nic, string VolumePath);

/// <summary>
/// Starts the AoE target under test on <paramref name="host"/> and returns once it serves (or is about to: the guest
/// keeps rediscovering). Called again with the same spec after a scenario killed the first instance.
/// </summary>
public delegate Task<LabProcess> AoeTargetLauncher(LabHost host, AoeTargetSpec target, CancellationToken ct);

/// <summary>What a guest scenario measured; the scenario has already asserted its checks.</summary>
public sealed record GuestRun(GuestKernelInfo Kernel, TimeSpan InitramfsBuildTime, GuestLine Pass, IReadOnlyList<GuestLine> Lines)
{
    /// <summary>From QEMU's start to the PASS line, as the host saw it.</summary>
    public TimeSpan BootToPass => Pass.At;
}

/// <summary>
/// End-to-end scenarios against the Linux kernel <c>aoe</c> initiator in a QEMU guest, parameterised by how the target
/// starts, so the same checks run against vblade and against our own target. Each builds its own lab (one switch, MTU
/// 9000, a host "target" and a TAP), checks the guest's verdict and the bytes in the volume file, and cleans up.
/// </summary>
public static class GuestScenarios
{
    public const int VolumeMiB = 64;

    /// <summary>From QEMU's start to the verdict; a TCG boot with the checks takes 5-20 s, runs on a loaded machine longer.</summary>
    private static readonly TimeSpan VerdictTimeout = TimeSpan.FromMinutes(3);
    private static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(60);

    /// <summary>The reference target: <c>vblade SHELF SLOT NIC FILE</c>, ready once it prints its sector count.</summary>
    public static AoeTargetLauncher Vblade { get; } = async (host, target, ct) =>
    {
        var vblade = host.Start("vblade",
            target.Shelf.ToString(CultureInfo.InvariantCulture), target.Slot.ToString(CultureInfo.InvariantCulture), target.Nic, target.VolumePath);
        await vblade.WaitForOutputAsync(" sectors", TimeSpan.FromSeconds(15), ct).ConfigureAwait(false);
        return vblade;
    };

    /// <summary>
    /// The guest writes <paramref name="lengthMiB"/> MiB at <paramref name="offsetMiB"/> with O_DIRECT and reads it back;
    /// asserts its PASS line, the device size it saw, and the pattern in the volume file on the host.
    /// </summary>
    public static async Task<GuestRun> WriteReadBackAsync(AoeTargetLauncher startTarget, Action<string> log, long offsetMiB = 8, int lengthMiB = 16, CancellationToken ct = default)
    {
        var script = GuestScripts.WriteReadBack(offsetMiB, lengthMiB);
        await using var setup = await Setup.CreateAsync(script, log, ct).ConfigureAwait(false);
        await setup.StartTargetAsync(startTarget, ct).ConfigureAwait(false);
        var guest = await setup.StartGuestAsync().ConfigureAwait(false);

        var pass = await guest.WaitForLineAsync(GuestInit.PassTag, VerdictTimeout, ct).ConfigureAwait(false);
        await guest.WaitForExitAsync(ExitTimeout, ct).ConfigureAwait(false);
        setup.LogTranscript(pass);

        Assert.Equal(VolumeMiB * 2048L, pass.Number("sectors"));
        Assert.Null(script.Pattern.CheckFile(setup.VolumePath, offsetMiB, lengthMiB, offsetMiB));
        return new GuestRun(setup.Kernel, setup.InitramfsBuildTime, pass, guest.Lines);
    }

    /// <summary>
    /// The guest writes in a loop; after its fourth write the target is killed (SIGKILL), and restarted on the same file after
    /// <paramref name="outage"/> (default 3 s). Asserts that the write in flight stalled and then completed, that
    /// <see cref="GuestWriteLoop.WritesAfterStall"/> more writes completed after the restart, that every slot reads back in
    /// the guest, and that the volume file holds each slot's last write.
    /// </summary>
    public static async Task<GuestRun> WriteLoopAcrossTargetRestartAsync(AoeTargetLauncher startTarget, Action<string> log, TimeSpan? outage = null, GuestWriteLoop? loop = null, CancellationToken ct = default)
    {
        loop ??= new GuestWriteLoop();
        var down = outage ?? TimeSpan.FromSeconds(3);
        // The guest recognises the outage by one write taking at least StallThreshold. The driver resumes at its next
        // retransmission after the restart, which can come well under a second after it (measured), so only an outage
        // clearly longer than the threshold is sure to show as a stall.
        if (down < loop.StallThreshold + TimeSpan.FromSeconds(0.5))
            throw new ArgumentOutOfRangeException(nameof(outage), down, $"The outage must exceed the guest's stall threshold ({loop.StallThreshold.TotalSeconds:F1} s) by at least 0.5 s.");
        var script = GuestScripts.WriteLoop(loop);
        await using var setup = await Setup.CreateAsync(script, log, ct).ConfigureAwait(false);
        var first = await setup.StartTargetAsync(startTarget, ct).ConfigureAwait(false);
        var guest = await setup.StartGuestAsync().ConfigureAwait(false);

        await guest.WaitForLineAsync(line => IsProgress(line) && line.Number("i") >= 3, "the guest's fourth completed write", VerdictTimeout, ct).ConfigureAwait(false);
        await first.KillAsync(Signal.Kill).ConfigureAwait(false);
        var killedAt = guest.Elapsed;
        var lastBeforeKill = guest.Lines.Where(IsProgress).Max(line => line.Number("i"));
        log(FormattableString.Invariant($"[{killedAt.TotalSeconds,7:F2}s] host: target killed (SIGKILL) after write i={lastBeforeKill}; restarting in {down.TotalSeconds:F1} s"));
        // The outage itself is the scenario: a fixed time with the target gone, not a wait for a condition.
        await Task.Delay(down, ct).ConfigureAwait(false);
        var second = await setup.StartTargetAsync(startTarget, ct).ConfigureAwait(false);
        var restartedAt = guest.Elapsed;
        log(FormattableString.Invariant($"[{restartedAt.TotalSeconds,7:F2}s] host: target restarted"));

        var pass = await guest.WaitForLineAsync(GuestInit.PassTag, loop.MaxDuration + VerdictTimeout, ct).ConfigureAwait(false);
        await guest.WaitForExitAsync(ExitTimeout, ct).ConfigureAwait(false);
        var lines = guest.Lines;
        var stall = lines.FirstOrDefault(line => line.Text.StartsWith(GuestInit.InfoTag + " stall ", StringComparison.Ordinal));
        var resumed = lines.Where(line => IsProgress(line) && line.At > restartedAt).ToList();
        if (resumed.Count > 0)
            log(FormattableString.Invariant($"host: first write completed {(resumed[0].At - restartedAt).TotalSeconds:F1} s after the restart ({(resumed[0].At - killedAt).TotalSeconds:F1} s after the kill)"));
        setup.LogTranscript(pass);

        Assert.True(stall is not null, "Expected a write to stall while the target was down; none took the stall threshold.");
        Assert.True(stall.Number("i") > lastBeforeKill, $"The stalled write (i={stall.Number("i")}) must be one issued after the kill (last completed before it: i={lastBeforeKill}).");
        Assert.True(resumed.Count >= loop.WritesAfterStall,
            $"Expected at least {loop.WritesAfterStall} writes to complete after the restart; {resumed.Count} did.");
        Assert.False(second.HasExited, $"The restarted target exited during the run. Output:\n{second.Output}");

        var iterations = pass.Number("iterations");
        foreach (var (offsetMiB, firstPatternMiB) in loop.FinalContents(iterations))
            Assert.Null(script.Pattern.CheckFile(setup.VolumePath, offsetMiB, loop.ChunkMiB, firstPatternMiB));
        return new GuestRun(setup.Kernel, setup.InitramfsBuildTime, pass, lines);
    }

    private static bool IsProgress(GuestLine line) => line.Text.StartsWith(GuestInit.ProgressTag + " write ", StringComparison.Ordinal);

    /// <summary>One scenario's resources, released in reverse order of creation.</summary>
    private sealed class Setup : IAsyncDisposable
    {
        private readonly Action<string> _log;
        private readonly string _directory;
        private readonly List<LabProcess> _targets = [];
        private NetworkLab? _lab;
        private LabHost? _host;
        private string? _tap;
        private GuestInitramfs? _initramfs;
        private QemuGuest? _guest;

        private Setup(Action<string> log, string directory)
        {
            _log = log;
            _directory = directory;
            VolumePath = Path.Combine(directory, "volume.img");
        }

        public string VolumePath { get; }

        public GuestKernelInfo Kernel => _initramfs!.Kernel;

        public TimeSpan InitramfsBuildTime { get; private set; }

        private AoeTargetSpec Target => new(0, 1, _host!.Nics[0], VolumePath);

        public static async Task<Setup> CreateAsync(GuestScript script, Action<string> log, CancellationToken ct)
        {
            var setup = new Setup(log, Directory.CreateTempSubdirectory("xenaoe-volume-").FullName);
            try
            {
                using (var volume = File.Create(setup.VolumePath))
                    volume.SetLength(VolumeMiB * (long)GuestPattern.MiB);

                var kernel = await GuestKernel.EnsureAsync(ct).ConfigureAwait(false);
                log(kernel.BuildTime is { } built
                    ? FormattableString.Invariant($"guest kernel {kernel.Release} (package {kernel.PackageVersion}) downloaded and unpacked by this test process in {built.TotalSeconds:F1} s into {kernel.Directory}")
                    : $"guest kernel {kernel.Release} (package {kernel.PackageVersion}) from the cache {kernel.Directory}");
                var clock = Stopwatch.StartNew();
                setup._initramfs = await GuestInitramfs.BuildAsync(script, ct).ConfigureAwait(false);
                setup.InitramfsBuildTime = clock.Elapsed;
                log(FormattableString.Invariant($"initramfs for {script.Name} built in {clock.Elapsed.TotalMilliseconds:F0} ms ({new FileInfo(setup._initramfs.Path).Length / 1024} KiB)"));

                setup._lab = await NetworkLab.CreateAsync(switches: 1, mtu: 9000).ConfigureAwait(false);
                setup._host = await setup._lab.AddHostAsync("target").ConfigureAwait(false);
                setup._tap = await setup._lab.AddTapAsync(0).ConfigureAwait(false);
                return setup;
            }
            catch
            {
                await setup.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }

        public async Task<LabProcess> StartTargetAsync(AoeTargetLauncher startTarget, CancellationToken ct)
        {
            var target = await startTarget(_host!, Target, ct).ConfigureAwait(false);
            _targets.Add(target);
            return target;
        }

        public async Task<QemuGuest> StartGuestAsync()
        {
            _guest = await QemuGuest.StartAsync(_lab!.SwitchNamespace, _tap!, _initramfs!).ConfigureAwait(false);
            return _guest;
        }

        public void LogTranscript(GuestLine pass)
        {
            var lines = _guest!.Lines;
            var boot = lines.FirstOrDefault(line => line.Text.StartsWith(GuestInit.InfoTag + " boot ", StringComparison.Ordinal));
            _log(FormattableString.Invariant(
                $"QEMU start to PASS: {pass.At.TotalSeconds:F1} s (guest uptime {pass.Value("uptime_ms")} ms; /init started {boot?.At.TotalSeconds ?? double.NaN:F1} s after QEMU)"));
            foreach (var line in lines)
                _log(line.ToString());
        }

        public async ValueTask DisposeAsync()
        {
            if (_guest is not null)
            {
                if (_guest.HasExited is false)
                    _log($"QEMU still running at clean-up; transcript so far:\n{_guest.Transcript}");
                await _guest.DisposeAsync().ConfigureAwait(false);
            }
            foreach (var target in _targets)
            {
                if (target.HasExited)
                    continue;
                await target.DisposeAsync().ConfigureAwait(false);
            }
            if (_lab is not null)
                await _lab.DisposeAsync().ConfigureAwait(false);
            _initramfs?.Dispose();
            Directory.Delete(_directory, recursive: true);
        }
    }
}
