using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace XenAoe.Lab.Guests;

/// <summary>
/// A built VM guest: a kernel and initrd for QEMU's direct kernel boot (<c>-kernel</c>, <c>-initrd</c>, <c>-append</c>) and
/// the raw ext4 root disk the guest boots from. Every file lives in the cache and is shared: give each VM its own copy of
/// <see cref="RootImagePath"/> (the lab writes it onto the VM's mirrored volume), never the file itself.
/// </summary>
/// <param name="Directory">The image's cache folder, <c>CACHE/vm-guest/HASH</c>.</param>
/// <param name="ContentHash">Hash of everything the image is built from (kernel version, busybox, scripts, size).</param>
/// <param name="Kernel">The guest kernel whose modules are in the initrd.</param>
/// <param name="KernelPath">The uncompressed kernel (<c>vmlinux</c>, an ELF QEMU boots through its PVH entry), for <c>-kernel</c>.</param>
/// <param name="InitrdPath">The gzipped cpio initrd, for <c>-initrd</c>.</param>
/// <param name="RootImagePath">The raw ext4 image (label <c>xenaoe-root</c>) that is the guest's <c>/dev/vda</c>.</param>
/// <param name="RootImageSize">Size of <see cref="RootImagePath"/> in bytes; a VM disk must be at least this large.</param>
/// <param name="BuildTime">How long this process spent building; <see langword="null"/> when the cache already held the image.</param>
public sealed record VmGuestImageInfo(
    string Directory,
    string ContentHash,
    GuestKernelInfo Kernel,
    string KernelPath,
    string InitrdPath,
    string RootImagePath,
    long RootImageSize,
    TimeSpan? BuildTime)
{
    /// <summary>
    /// The kernel command line for QEMU's <c>-append</c>: serial console, reboot at once on panic, root on the first virtio
    /// disk, and kernel messages of warning level and above (I/O and file-system errors stay visible on the console).
    /// </summary>
    public string KernelCommandLine(VmGuestNetwork network)
    {
        ArgumentNullException.ThrowIfNull(network);
        return $"console=ttyS0 panic=-1 root={VmGuestImage.RootDevice} rw loglevel=4 {network.ToKernelParameters()}";
    }
}

/// <summary>
/// Builds the lab's VM guest image once per machine and content, into <c>$XENAOE_CACHE/vm-guest/HASH</c> (default
/// <c>/var/cache/xenaoe</c>), from the cached Debian kernel (<see cref="GuestKernel"/>), static busybox and e2fsprogs.
/// </summary>
/// <remarks>
/// <para>The guest boots from its disk: the initrd loads the virtio and ext4 modules, waits for <c>/dev/vda</c> (30 s, then
/// prints <see cref="InitrdErrorTag"/> and powers off), mounts it read-write and switches to it. <c>/sbin/init</c> there
/// configures <c>eth0</c> from the kernel command line (<see cref="VmGuestNetwork"/>), counts boots in
/// <see cref="BootCounterPath"/>, runs a counter that every 200 ms writes its next value to <see cref="CounterPath"/> with
/// fsync (a failed write prints <see cref="IoErrorTag"/> and is retried), serves it over HTTP on port 80
/// (<c>GET /counter</c>: the number as text; <c>GET /cgi-bin/status</c>: JSON with counter, boot, uptime, hostname, ioErrors),
/// prints <see cref="ReadyTag"/>, keeps a shell on <c>ttyS0</c>, powers off on the ACPI power button, and on reboot or
/// power-off stops the counter, syncs and remounts the root read-only.</para>
/// <para>Thread-safe and safe across processes, like <see cref="GuestKernel"/>: builds run under a lock file in a staging
/// folder renamed into place when complete; a cached image is returned without locking.</para>
/// </remarks>
public static class VmGuestImage
{
    /// <summary>Size of the root image: 64 MiB.</summary>
    public const long DefaultRootImageSize = 64L << 20;

    /// <summary>The guest's root disk, the first virtio disk.</summary>
    public const string RootDevice = "/dev/vda";

    /// <summary>Console line once the guest serves HTTP: <c>XENAOE-GUEST READY host=H ip=A/P boot=N counter=N uptime=S</c>.</summary>
    public const string ReadyTag = "XENAOE-GUEST READY";

    /// <summary>Console line for each failed counter or boot-counter write: <c>XENAOE-GUEST IO-ERROR counter=N errors=E ...</c>.</summary>
    public const string IoErrorTag = "XENAOE-GUEST IO-ERROR";

    /// <summary>Console line when the initrd cannot mount the root disk (then it powers off).</summary>
    public const string InitrdErrorTag = "XENAOE-GUEST INITRD-ERROR";

    /// <summary>Console line when the ACPI power button was pressed.</summary>
    public const string PowerButtonTag = "XENAOE-GUEST POWER-BUTTON";

    /// <summary>Console line as reboot or power-off begins: <c>XENAOE-GUEST SHUTDOWN counter=N ioErrors=E</c>.</summary>
    public const string ShutdownTag = "XENAOE-GUEST SHUTDOWN";

    /// <summary>Console line once the root file system is read-only during reboot or power-off.</summary>
    public const string UnmountedTag = "XENAOE-GUEST UNMOUNTED";

    /// <summary>The counter on the guest's disk: a 13-byte record, the number right-aligned in 12 characters and a newline.</summary>
    public const string CounterPath = "/var/lib/xenaoe/counter";

    /// <summary>The boot count on the guest's disk, in the same format as <see cref="CounterPath"/>.</summary>
    public const string BootCounterPath = "/var/lib/xenaoe/boot";

    private const string FormatVersion = "xenaoe-vm-guest 2";
    private const string CompleteMarker = ".xenaoe-complete";
    private const string Busybox = "/bin/busybox";
    private static readonly TimeSpan LockTimeout = TimeSpan.FromMinutes(10);
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static volatile VmGuestImageInfo? _image;

    public static string ImageCacheDirectory => Path.Combine(CacheLock.CacheRoot, "vm-guest");

    /// <summary>
    /// Returns the cached image, building it first (about 2 s, plus the kernel download on a fresh machine) if this machine
    /// has none for the current kernel, busybox and scripts.
    /// </summary>
    /// <param name="progress">Receives one line per build step; nothing when the image is cached.</param>
    /// <exception cref="InvalidOperationException">busybox-static or e2fsprogs is missing, or a build step failed.</exception>
    public static async Task<VmGuestImageInfo> EnsureAsync(IProgress<string>? progress = null, CancellationToken ct = default)
    {
        if (_image is { } known)
            return known;
        await Gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_image is { } built)
                return built;
            progress?.Report("guest kernel: checking the cache");
            var kernel = await GuestKernel.EnsureAsync(ct).ConfigureAwait(false);
            if (kernel.BuildTime is { } kernelTime)
                progress?.Report(FormattableString.Invariant($"guest kernel: {kernel.Release} downloaded in {kernelTime.TotalSeconds:F1} s"));
            if (!File.Exists(Busybox))
                throw new InvalidOperationException($"{Busybox} is missing: apt-get install busybox-static.");
            var modules = kernel.ResolveModules(VmGuestScripts.Modules);
            var hash = await ContentHashAsync(kernel, modules, ct).ConfigureAwait(false);
            return _image = TryRead(kernel, hash) ?? await BuildUnderLockAsync(kernel, modules, hash, progress, ct).ConfigureAwait(false);
        }
        finally
        {
            Gate.Release();
        }
    }

    private static VmGuestImageInfo? TryRead(GuestKernelInfo kernel, string hash)
    {
        var directory = Path.Combine(ImageCacheDirectory, hash);
        if (!File.Exists(Path.Combine(directory, CompleteMarker)))
            return null;
        var image = Describe(kernel, hash, directory, buildTime: null);
        return File.Exists(image.KernelPath) && File.Exists(image.InitrdPath) && new FileInfo(image.RootImagePath) is { Exists: true } root
            && root.Length == image.RootImageSize
            ? image
            : null;
    }

    private static VmGuestImageInfo Describe(GuestKernelInfo kernel, string hash, string directory, TimeSpan? buildTime) =>
        new(directory, hash, kernel,
            Path.Combine(directory, "vmlinux"),
            Path.Combine(directory, "initrd.img"),
            Path.Combine(directory, "root.img"),
            DefaultRootImageSize,
            buildTime);

    /// <summary>SHA-256 over the format version, kernel, module list, busybox binary, scripts and image size; 16 hex digits.</summary>
    private static async Task<string> ContentHashAsync(GuestKernelInfo kernel, IReadOnlyList<string> modules, CancellationToken ct)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string text) => sha.AppendData(Encoding.UTF8.GetBytes(text + "\0"));
        Add(FormatVersion);
        Add(kernel.Release);
        Add(kernel.PackageVersion);
        foreach (var module in modules)
            Add(Path.GetFileName(module));
        sha.AppendData(await File.ReadAllBytesAsync(Busybox, ct).ConfigureAwait(false));
        foreach (var script in new[] { VmGuestScripts.InitrdInit, VmGuestScripts.RootInit, VmGuestScripts.Library, VmGuestScripts.Inittab,
                     VmGuestScripts.Shutdown, VmGuestScripts.PowerButton, VmGuestScripts.StatusCgi, VmGuestScripts.Profile })
            Add(script);
        Add(DefaultRootImageSize.ToString(CultureInfo.InvariantCulture));
        return Convert.ToHexStringLower(sha.GetHashAndReset())[..16];
    }

    private static async Task<VmGuestImageInfo> BuildUnderLockAsync(
        GuestKernelInfo kernel, IReadOnlyList<string> modules, string hash, IProgress<string>? progress, CancellationToken ct)
    {
        Directory.CreateDirectory(ImageCacheDirectory);
        await using var fileLock = await CacheLock.AcquireAsync(Path.Combine(ImageCacheDirectory, "lock"), LockTimeout, ct).ConfigureAwait(false);

        // Another process may have finished while this one waited for the lock.
        if (TryRead(kernel, hash) is { } built)
            return built;

        // Holding the lock means no other build is running: staging folders left behind are from interrupted runs.
        foreach (var stale in Directory.EnumerateDirectories(ImageCacheDirectory, ".staging-*"))
            Directory.Delete(stale, recursive: true);

        var stopwatch = Stopwatch.StartNew();
        var staging = Path.Combine(ImageCacheDirectory, $".staging-{Environment.ProcessId}-{Guid.NewGuid():N}");
        var output = Path.Combine(staging, "out");
        Directory.CreateDirectory(output);
        try
        {
            var image = Describe(kernel, hash, output, null);
            progress?.Report($"vm guest {hash}: initrd ({modules.Count} modules)");
            await BuildInitrdAsync(Path.Combine(staging, "initrd"), modules, image.InitrdPath, ct).ConfigureAwait(false);
            progress?.Report($"vm guest {hash}: root file system ({DefaultRootImageSize >> 20} MiB ext4)");
            await BuildRootImageAsync(Path.Combine(staging, "root"), image.RootImagePath, ct).ConfigureAwait(false);
            progress?.Report($"vm guest {hash}: kernel unpacked for PVH boot");
            await PvhKernel.ExtractAsync(kernel.VmlinuzPath, image.KernelPath, ct).ConfigureAwait(false);
            File.WriteAllText(Path.Combine(output, CompleteMarker), $"{FormatVersion}\n{kernel.Release} {kernel.PackageVersion}\n");

            var final = Path.Combine(ImageCacheDirectory, hash);
            if (Directory.Exists(final))
                Directory.Delete(final, recursive: true);
            Directory.Move(output, final);
            progress?.Report(FormattableString.Invariant($"vm guest {hash}: built in {stopwatch.Elapsed.TotalSeconds:F1} s"));
            return Describe(kernel, hash, final, stopwatch.Elapsed);
        }
        finally
        {
            Directory.Delete(staging, recursive: true);
        }
    }

    private static async Task BuildInitrdAsync(string root, IReadOnlyList<string> modules, string initrd, CancellationToken ct)
    {
        Directory.CreateDirectory(Path.Combine(root, "bin"));
        Directory.CreateDirectory(Path.Combine(root, "modules"));
        File.Copy(Busybox, Path.Combine(root, "bin", "busybox"));
        foreach (var module in modules)
            File.Copy(module, Path.Combine(root, "modules", Path.GetFileName(module)));
        var names = string.Join(' ', modules.Select(m => Path.GetFileNameWithoutExtension(m)));
        WriteScript(Path.Combine(root, "init"), VmGuestScripts.InitrdInit.Replace("@MODULES@", names, StringComparison.Ordinal));

        // gzip -1: the payload is mostly modules and busybox; higher levels cost time and save little.
        const string Pack = "set -o pipefail; cd \"$1\" && chmod 0755 bin/busybox && chmod 0644 modules/* && find . | cpio -o -H newc -R 0:0 --quiet | gzip -1 > \"$2\"";
        (await Command.RunAsync("bash", ["-c", Pack, "bash", root, initrd], TimeSpan.FromMinutes(1), ct).ConfigureAwait(false)).EnsureSuccess();
    }

    private static async Task BuildRootImageAsync(string root, string image, CancellationToken ct)
    {
        foreach (var directory in new[] { "bin", "sbin", "usr/bin", "usr/sbin", "usr/lib/xenaoe", "etc/xenaoe", "etc/acpi/PWRF",
                     "dev", "proc", "sys", "tmp", "run", "root", "var/lib/xenaoe" })
            Directory.CreateDirectory(Path.Combine(root, directory));
        File.Copy(Busybox, Path.Combine(root, "bin", "busybox"));
        SetMode(Path.Combine(root, "bin", "busybox"), Executable);

        // Applet links as busybox installs them, except /sbin/init, which is the guest's script.
        var applets = (await Command.RunAsync(Busybox, ["--list-full"], TimeSpan.FromSeconds(10), ct).ConfigureAwait(false)).EnsureSuccess().StdOut;
        foreach (var applet in applets.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (applet is "sbin/init" or "linuxrc" || applet.Contains("..", StringComparison.Ordinal))
                continue;
            var link = Path.Combine(root, applet);
            Directory.CreateDirectory(Path.GetDirectoryName(link)!);
            if (!Path.Exists(link))
                File.CreateSymbolicLink(link, "/bin/busybox");
        }

        WriteScript(Path.Combine(root, "sbin", "init"), VmGuestScripts.RootInit);
        WriteScript(Path.Combine(root, "etc", "xenaoe", "shutdown"), VmGuestScripts.Shutdown);
        WriteScript(Path.Combine(root, "etc", "acpi", "PWRF", "00000080"), VmGuestScripts.PowerButton);
        WriteScript(Path.Combine(root, "usr", "lib", "xenaoe", "status.cgi"), VmGuestScripts.StatusCgi);
        WriteText(Path.Combine(root, "etc", "xenaoe", "lib.sh"), VmGuestScripts.Library);
        WriteText(Path.Combine(root, "etc", "inittab"), VmGuestScripts.Inittab);
        WriteText(Path.Combine(root, "etc", "profile"), VmGuestScripts.Profile);
        WriteText(Path.Combine(root, "etc", "passwd"), "root::0:0:root:/root:/bin/sh");
        WriteText(Path.Combine(root, "etc", "group"), "root:x:0:");
        SetMode(Path.Combine(root, "tmp"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
            | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute | UnixFileMode.StickyBit);

        // -d copies the folder in without mounting anything; 4 KiB blocks match the guest's page-sized writes; errors=continue
        // keeps the counter running (and its I/O errors counted) rather than turning the disk read-only at the first one.
        var size = (DefaultRootImageSize >> 10).ToString(CultureInfo.InvariantCulture) + "k";
        (await Command.RunAsync("mke2fs", ["-q", "-F", "-t", "ext4", "-b", "4096", "-m", "0", "-e", "continue", "-L", "xenaoe-root",
            "-E", "root_owner=0:0", "-d", root, image, size], TimeSpan.FromMinutes(1), ct).ConfigureAwait(false)).EnsureSuccess();
        if (new FileInfo(image).Length != DefaultRootImageSize)
            throw new InvalidOperationException($"mke2fs made {image} {new FileInfo(image).Length} bytes, not {DefaultRootImageSize}.");
    }

    private const UnixFileMode Executable = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    private static void WriteScript(string path, string text)
    {
        WriteText(path, text);
        SetMode(path, Executable);
    }

    /// <summary>The image is a Linux file system: the modes of the files it is built from go into it.</summary>
    private static void SetMode(string path, UnixFileMode mode)
    {
        if (OperatingSystem.IsWindows())
            throw new PlatformNotSupportedException("The VM guest image is built on Linux.");
        File.SetUnixFileMode(path, mode);
    }

    private static void WriteText(string path, string text) => File.WriteAllText(path, text.EndsWith('\n') ? text : text + "\n");
}
