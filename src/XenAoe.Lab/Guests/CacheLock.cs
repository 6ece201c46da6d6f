using System.Diagnostics;

namespace XenAoe.Lab.Guests;

/// <summary>The machine-wide cache folder of built guest artefacts and the lock file that serialises builds into it.</summary>
internal static class CacheLock
{
    /// <summary><c>$XENAOE_CACHE</c>, or <c>/var/cache/xenaoe</c>.</summary>
    public static string CacheRoot =>
        Environment.GetEnvironmentVariable("XENAOE_CACHE") is { Length: > 0 } root ? root : "/var/cache/xenaoe";

    /// <summary>Takes an exclusive lock on <paramref name="path"/>, waiting up to <paramref name="timeout"/> for another holder.</summary>
    /// <returns>The open lock file; disposing it releases the lock.</returns>
    public static async Task<FileStream> AcquireAsync(string path, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                // On Linux FileShare.None takes flock(LOCK_EX | LOCK_NB), which the kernel drops when the holder dies,
                // so a crashed build never leaves the lock held.
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException e) when (e is not DirectoryNotFoundException && deadline.Elapsed < timeout)
            {
                // Another process is building: wait for it rather than fail.
                await Task.Delay(TimeSpan.FromMilliseconds(250), ct).ConfigureAwait(false);
            }
        }
    }
}
