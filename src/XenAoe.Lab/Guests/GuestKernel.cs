using System.Diagnostics;
using System.Text.RegularExpressions;

namespace XenAoe.Lab.Guests;

/// <summary>
/// A Debian kernel unpacked for QEMU guests: the <c>vmlinuz</c> image and its module tree (with <c>modules.dep</c>).
/// </summary>
/// <param name="Release">Kernel release, e.g. <c>6.1.0-56-amd64</c> (what <c>uname -r</c> prints in the guest).</param>
/// <param name="PackageVersion">Debian package version, e.g. <c>6.1.192-2</c>.</param>
/// <param name="Directory">Root of the unpacked package in the cache.</param>
/// <param name="BuildTime">How long this process spent downloading and unpacking; <see langword="null"/> when the cache already held the kernel.</param>
public sealed record GuestKernelInfo(string Release, string PackageVersion, string Directory, TimeSpan? BuildTime)
{
    public string VmlinuzPath => Path.Combine(Directory, "boot", $"vmlinuz-{Release}");

    /// <summary><c>lib/modules/RELEASE</c>: the module tree, with <c>modules.dep</c> written by <c>depmod</c>.</summary>
    public string ModuleDirectory => Path.Combine(Directory, "lib", "modules", Release);

    /// <summary>
    /// The modules to load for <paramref name="names"/>, dependencies first (the order <c>modprobe</c> uses), each once,
    /// as absolute paths of plain <c>.ko</c> files.
    /// </summary>
    public IReadOnlyList<string> ResolveModules(params IEnumerable<string> names)
    {
        var dependencies = new Dictionary<string, (string Path, string[] Dependencies)>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(Path.Combine(ModuleDirectory, "modules.dep")))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
                continue;
            var path = line[..colon];
            dependencies[ModuleName(path)] = (path, line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        }

        var order = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var name in names)
            Visit(name.Replace('-', '_'));
        return order;

        void Visit(string name)
        {
            if (!seen.Add(name))
                return;
            if (!dependencies.TryGetValue(name, out var entry))
                throw new InvalidOperationException($"Kernel {Release} has no module '{name}' in {ModuleDirectory}/modules.dep.");
            // modules.dep lists the whole dependency closure with the module to load first at the end.
            for (var i = entry.Dependencies.Length - 1; i >= 0; i--)
                Visit(ModuleName(entry.Dependencies[i]));
            if (!entry.Path.EndsWith(".ko", StringComparison.Ordinal))
                throw new InvalidOperationException($"Module {entry.Path} is compressed; the guest's busybox insmod needs a plain .ko.");
            order.Add(Path.Combine(ModuleDirectory, entry.Path));
        }
    }

    private static string ModuleName(string path)
    {
        var file = Path.GetFileName(path);
        var ko = file.IndexOf(".ko", StringComparison.Ordinal);
        return (ko < 0 ? file : file[..ko]).Replace('-', '_');
    }
}

/// <summary>
/// Downloads and unpacks the distribution's current <c>linux-image-amd64</c> kernel once per machine, into
/// <c>$XENAOE_CACHE/guest-kernel</c> (default <c>/var/cache/xenaoe/guest-kernel</c>), outside the repository.
/// </summary>
/// <remarks>
/// Thread-safe and safe across processes: builds run under an exclusive lock file, in a staging folder that is renamed into
/// place only when complete, so a build interrupted at any point leaves nothing that a later run mistakes for a kernel.
/// Once a kernel is cached, later calls neither lock nor contact apt.
/// </remarks>
public static partial class GuestKernel
{
    private const string MetaPackage = "linux-image-amd64";
    private const string CompleteMarker = ".xenaoe-complete";
    private static readonly TimeSpan LockTimeout = TimeSpan.FromMinutes(10);
    private static readonly TimeSpan DownloadTimeout = TimeSpan.FromMinutes(5);
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static volatile GuestKernelInfo? _kernel;

    /// <summary>The cache root: <c>$XENAOE_CACHE</c>, or <c>/var/cache/xenaoe</c>.</summary>
    public static string CacheRoot => CacheLock.CacheRoot;

    public static string KernelCacheDirectory => Path.Combine(CacheRoot, "guest-kernel");

    /// <summary>Returns the cached kernel, downloading and unpacking it first if this machine has none.</summary>
    public static async Task<GuestKernelInfo> EnsureAsync(CancellationToken ct = default)
    {
        if (_kernel is { } known)
            return known;
        await Gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return _kernel ??= TryReadCurrent() ?? await BuildUnderLockAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            Gate.Release();
        }
    }

    private static GuestKernelInfo? TryReadCurrent()
    {
        var current = Path.Combine(KernelCacheDirectory, "current");
        if (!File.Exists(current))
            return null;
        var release = File.ReadAllText(current).Trim();
        var directory = Path.Combine(KernelCacheDirectory, release);
        var marker = Path.Combine(directory, CompleteMarker);
        if (release.Length == 0 || !File.Exists(marker))
            return null;
        var kernel = new GuestKernelInfo(release, File.ReadAllText(marker).Trim(), directory, BuildTime: null);
        return File.Exists(kernel.VmlinuzPath) && File.Exists(Path.Combine(kernel.ModuleDirectory, "modules.dep")) ? kernel : null;
    }

    private static async Task<GuestKernelInfo> BuildUnderLockAsync(CancellationToken ct)
    {
        Directory.CreateDirectory(KernelCacheDirectory);
        await using var fileLock = await CacheLock.AcquireAsync(Path.Combine(KernelCacheDirectory, "lock"), LockTimeout, ct).ConfigureAwait(false);

        // Another process may have finished while this one waited for the lock.
        if (TryReadCurrent() is { } built)
            return built;

        // Holding the lock means no other build is running: staging folders left behind are from interrupted runs.
        foreach (var stale in Directory.EnumerateDirectories(KernelCacheDirectory, ".staging-*"))
            Directory.Delete(stale, recursive: true);

        var stopwatch = Stopwatch.StartNew();
        var staging = Path.Combine(KernelCacheDirectory, $".staging-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        try
        {
            var meta = await DownloadAsync(staging, MetaPackage, ct).ConfigureAwait(false);
            var depends = (await Command.RunAsync("dpkg-deb", ["-f", meta, "Depends"], TimeSpan.FromSeconds(30), ct).ConfigureAwait(false))
                .EnsureSuccess().StdOut;
            var match = ImagePackage().Match(depends);
            if (!match.Success)
                throw new InvalidOperationException($"{MetaPackage} depends on '{depends.Trim()}', which names no linux-image-RELEASE package.");
            var package = match.Value;
            var release = match.Groups["release"].Value;

            var deb = await DownloadAsync(staging, package, ct).ConfigureAwait(false);
            var packageVersion = (await Command.RunAsync("dpkg-deb", ["-f", deb, "Version"], TimeSpan.FromSeconds(30), ct).ConfigureAwait(false))
                .EnsureSuccess().StdOut.Trim();
            var root = Path.Combine(staging, "root");
            (await Command.RunAsync("dpkg", ["-x", deb, root], TimeSpan.FromMinutes(5), ct).ConfigureAwait(false)).EnsureSuccess();
            // The package ships no modules.dep (the postinst would run depmod); the guest's module order comes from it.
            (await Command.RunAsync("depmod", ["-b", root, release], TimeSpan.FromMinutes(2), ct).ConfigureAwait(false)).EnsureSuccess();

            var kernel = new GuestKernelInfo(release, packageVersion, root, null);
            if (!File.Exists(kernel.VmlinuzPath))
                throw new InvalidOperationException($"{package} unpacked without {kernel.VmlinuzPath}.");
            File.Delete(meta);
            File.Delete(deb);
            File.WriteAllText(Path.Combine(root, CompleteMarker), packageVersion + "\n");

            var final = Path.Combine(KernelCacheDirectory, release);
            if (Directory.Exists(final))
                Directory.Delete(final, recursive: true);
            Directory.Move(root, final);
            var currentTemp = Path.Combine(staging, "current");
            File.WriteAllText(currentTemp, release + "\n");
            File.Move(currentTemp, Path.Combine(KernelCacheDirectory, "current"), overwrite: true);
            return new GuestKernelInfo(release, packageVersion, final, stopwatch.Elapsed);
        }
        finally
        {
            Directory.Delete(staging, recursive: true);
        }
    }

    /// <summary>Runs <c>apt-get download</c> in <paramref name="directory"/>; refreshes the package lists once if it fails.</summary>
    private static async Task<string> DownloadAsync(string directory, string package, CancellationToken ct)
    {
        // apt-get download writes into the working directory; the sandbox user _apt cannot write into a root-owned folder.
        string[] download = ["-c", "cd \"$1\" && shift && exec \"$@\"", "sh", directory, "apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", package];
        var result = await Command.RunAsync("sh", download, DownloadTimeout, ct).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            // Empty or stale package lists are the usual cause (fresh containers have none).
            (await Command.RunAsync("apt-get", ["-q", "update"], DownloadTimeout, ct).ConfigureAwait(false)).EnsureSuccess();
            (await Command.RunAsync("sh", download, DownloadTimeout, ct).ConfigureAwait(false)).EnsureSuccess();
        }
        return Directory.EnumerateFiles(directory, $"{package}_*.deb").SingleOrDefault()
            ?? throw new InvalidOperationException($"apt-get download {package} succeeded but left no {package}_*.deb in {directory}.");
    }

    [GeneratedRegex(@"\blinux-image-(?<release>\d[^\s,()|]*)")]
    private static partial Regex ImagePackage();
}
