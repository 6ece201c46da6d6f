using XenAoe.Storage;

namespace XenAoe.Target.Tests;

public sealed class StoragePoolTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("xenaoe-pool-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static VolumeSpec Spec(string name, byte slot = 0, long size = 1 << 20) => new() { Name = name, Shelf = 1, Slot = slot, SizeBytes = size };

    [Fact]
    public void A_pool_is_owned_by_one_process_at_a_time()
    {
        using var pool = StoragePool.Open(_dir);
        var e = Assert.Throws<StorageException>(() => StoragePool.Open(_dir));
        Assert.Equal(StorageError.Conflict, e.Error);
        Assert.Contains("in use", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_open_that_may_wait_gets_the_pool_once_its_holder_lets_go()
    {
        var holder = StoragePool.Open(_dir);
        var waiting = Task.Run(() => StoragePool.Open(_dir, wait: TimeSpan.FromSeconds(10)));
        await Task.Delay(200);
        Assert.False(waiting.IsCompleted);
        holder.Dispose();
        using var pool = await waiting.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(Path.GetFullPath(_dir), pool.Directory);
    }

    [Fact]
    public void Volumes_and_their_runtime_state_survive_reopening()
    {
        using (var pool = StoragePool.Open(_dir))
        {
            var spec = pool.Create(Spec("web", size: 3 << 20));
            pool.Save(spec with { Reservation = ["02:00:00:00:00:0a"], MacMask = ["02:00:00:00:00:0b"], ConfigString = "b3duZXI=" });
        }
        using var reopened = StoragePool.Open(_dir);
        var web = reopened.Get("web");
        Assert.Equal(3 << 20, web.SizeBytes);
        Assert.Equal(["02:00:00:00:00:0a"], web.Reservation);
        Assert.Equal(["02:00:00:00:00:0b"], web.MacMask);
        Assert.Equal("b3duZXI=", web.ConfigString);
        Assert.Equal(3 << 20, new FileInfo(Path.Combine(_dir, "web.img")).Length);
    }

    [Theory]
    [InlineData("")]
    [InlineData("UPPER")]
    [InlineData("../escape")]
    [InlineData("-leading-dash")]
    public void Bad_names_are_refused(string name)
    {
        using var pool = StoragePool.Open(_dir);
        Assert.Equal(StorageError.Invalid, Assert.Throws<StorageException>(() => pool.Create(Spec(name))).Error);
    }

    [Fact]
    public void Two_volumes_cannot_share_an_address_or_use_a_broadcast_one()
    {
        using var pool = StoragePool.Open(_dir);
        pool.Create(Spec("a"));
        Assert.Contains("already used", Assert.Throws<StorageException>(() => pool.Create(Spec("b"))).Message, StringComparison.Ordinal);
        Assert.Contains("broadcast", Assert.Throws<StorageException>(() => pool.Create(Spec("c", slot: 255))).Message, StringComparison.Ordinal);
        Assert.Throws<StorageException>(() => pool.Create(Spec("d", slot: 1, size: 1000)));
    }

    [Fact]
    public void Shrinking_needs_explicit_consent_and_growing_does_not()
    {
        using var pool = StoragePool.Open(_dir);
        pool.Create(Spec("a", size: 2 << 20));
        Assert.Contains("--shrink", Assert.Throws<StorageException>(() => pool.Resize("a", 1 << 20, allowShrink: false)).Message, StringComparison.Ordinal);
        Assert.Equal(4 << 20, pool.Resize("a", 4 << 20, allowShrink: false).SizeBytes);
        Assert.Equal(1 << 20, pool.Resize("a", 1 << 20, allowShrink: true).SizeBytes);
    }

    [Fact]
    public void An_adopted_image_file_keeps_its_size_and_survives_deletion_of_the_volume()
    {
        var image = Path.Combine(_dir, "from-vblade.raw");
        File.WriteAllBytes(image, new byte[5 * 512 + 100]);
        using var pool = StoragePool.Open(_dir);
        var spec = pool.Create(Spec("adopted", size: 0) with { Device = image });
        Assert.Equal(5 * 512, spec.SizeBytes);
        pool.Delete("adopted");
        Assert.True(File.Exists(image));
        Assert.Throws<StorageException>(() => pool.Get("adopted"));
    }

    [Fact]
    public void Corrupt_metadata_is_reported_with_its_file()
    {
        File.WriteAllText(Path.Combine(_dir, "broken.json"), "{ not json");
        var e = Assert.Throws<StorageException>(() => StoragePool.Open(_dir));
        Assert.Contains("broken.json", e.Message, StringComparison.Ordinal);
    }
}
