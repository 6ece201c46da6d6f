using System.Diagnostics;
using Xunit.Abstractions;

namespace XenAoe.IntegrationTests.Guests;

/// <summary>The VM guest image is built once and then served from the cache.</summary>
[Trait("Category", "Integration")]
public sealed class VmGuestImageCacheTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_second_EnsureAsync_is_instant_and_returns_the_same_files()
    {
        var first = await VmGuestImage.EnsureAsync(new Progress<string>(output.WriteLine));
        output.WriteLine($"image {first.Directory}, built in {first.BuildTime?.TotalSeconds.ToString("F1") ?? "(cached)"} s");

        var clock = Stopwatch.StartNew();
        var second = await VmGuestImage.EnsureAsync();
        clock.Stop();

        Assert.Equal(first.Directory, second.Directory);
        Assert.Equal(first.KernelPath, second.KernelPath);
        Assert.Equal(first.InitrdPath, second.InitrdPath);
        Assert.Equal(first.RootImagePath, second.RootImagePath);
        Assert.True(clock.Elapsed < TimeSpan.FromMilliseconds(50), $"Expected the cached image at once; it took {clock.Elapsed.TotalMilliseconds:F1} ms.");
        Assert.StartsWith(Path.Combine(GuestKernel.CacheRoot, "vm-guest", first.ContentHash), first.Directory, StringComparison.Ordinal);
        Assert.Equal(first.RootImageSize, new FileInfo(first.RootImagePath).Length);
        Assert.True(new FileInfo(first.InitrdPath).Length > 1 << 20, "Expected an initrd of over 1 MiB (busybox and modules).");
        Assert.True(File.Exists(first.KernelPath), $"Expected the kernel at {first.KernelPath}.");
    }
}
