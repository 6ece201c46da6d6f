namespace XenAoe.IntegrationTests.Infrastructure;

/// <summary>
/// A gzipped newc initramfs for one <see cref="GuestScript"/>: static busybox as <c>/bin/busybox</c>, the virtio and
/// <c>aoe</c> modules flat in <c>/modules</c>, the pattern noise as <c>/xenaoe/noise</c> and the <c>/init</c> from
/// <see cref="GuestInit"/>. Lives in a temporary folder that <see cref="Dispose"/> deletes.
/// </summary>
public sealed class GuestInitramfs : IDisposable
{
    private const string Busybox = "/bin/busybox";
    private readonly string _directory;

    private GuestInitramfs(string directory, string path, GuestKernelInfo kernel, GuestScript script)
    {
        _directory = directory;
        Path = path;
        Kernel = kernel;
        Script = script;
    }

    /// <summary>The <c>.cpio.gz</c> to pass to QEMU's <c>-initrd</c>.</summary>
    public string Path { get; }

    /// <summary>The kernel whose modules are inside; boot <see cref="GuestKernelInfo.VmlinuzPath"/> with it.</summary>
    public GuestKernelInfo Kernel { get; }

    public GuestScript Script { get; }

    /// <summary>Builds the initramfs (about 2.5 MB, well under a second), fetching the guest kernel first if needed.</summary>
    public static async Task<GuestInitramfs> BuildAsync(GuestScript script, CancellationToken ct = default)
    {
        var kernel = await GuestKernel.EnsureAsync(ct).ConfigureAwait(false);
        if (!File.Exists(Busybox))
            throw new InvalidOperationException($"{Busybox} is missing: apt-get install busybox-static.");

        var directory = Directory.CreateTempSubdirectory("xenaoe-guest-").FullName;
        try
        {
            var root = System.IO.Path.Combine(directory, "root");
            var modules = kernel.ResolveModules([.. script.Modules, "aoe"]);
            Directory.CreateDirectory(System.IO.Path.Combine(root, "bin"));
            Directory.CreateDirectory(System.IO.Path.Combine(root, "modules"));
            Directory.CreateDirectory(System.IO.Path.Combine(root, "xenaoe"));
            foreach (var mount in new[] { "dev", "proc", "sys", "tmp" })
                Directory.CreateDirectory(System.IO.Path.Combine(root, mount));

            File.Copy(Busybox, System.IO.Path.Combine(root, "bin", "busybox"));
            foreach (var module in modules)
                File.Copy(module, System.IO.Path.Combine(root, "modules", System.IO.Path.GetFileName(module)));
            File.WriteAllBytes(System.IO.Path.Combine(root, "xenaoe", "noise"), script.Pattern.Noise.ToArray());

            // aoe loads last, by the boot sequence, once eth0 has its MTU.
            var early = modules.Select(m => System.IO.Path.GetFileNameWithoutExtension(m)).Where(m => m != "aoe");
            File.WriteAllText(System.IO.Path.Combine(root, "init"), GuestInit.Compose(script, early));

            var path = System.IO.Path.Combine(directory, "initramfs.cpio.gz");
            // gzip -1: the payload is mostly modules and noise; higher levels cost time and save little.
            const string Pack = "set -o pipefail; cd \"$1\" && chmod 0755 init bin/busybox && chmod 0644 modules/* xenaoe/noise && find . | cpio -o -H newc --quiet | gzip -1 > \"$2\"";
            (await Command.RunAsync("bash", ["-c", Pack, "bash", root, path], TimeSpan.FromMinutes(1), ct).ConfigureAwait(false)).EnsureSuccess();
            Directory.Delete(root, recursive: true);
            return new GuestInitramfs(directory, path, kernel, script);
        }
        catch
        {
            Directory.Delete(directory, recursive: true);
            throw;
        }
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
            Directory.Delete(_directory, recursive: true);
    }
}
