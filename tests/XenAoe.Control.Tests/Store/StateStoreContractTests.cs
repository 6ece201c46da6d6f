using XenAoe.Control.Store;

namespace XenAoe.Control.Tests.Store;

/// <summary>
/// What every <see cref="IStateStore"/> promises; derived classes supply a fresh, empty store per test (SQLite in a temp
/// directory here, a real etcd cluster in the integration tests, which compile this file too).
/// </summary>
public abstract class StateStoreContractTests : IAsyncLifetime
{
    private static readonly TimeSpan s_watchTimeout = TimeSpan.FromSeconds(10);

    protected IStateStore Store { get; private set; } = null!;

    protected abstract Task<IStateStore> CreateStoreAsync();

    public async Task InitializeAsync() => Store = await CreateStoreAsync();

    public async Task DisposeAsync() => await Store.DisposeAsync();

    [Fact]
    public async Task A_missing_key_reads_as_null()
    {
        Assert.Null(await Store.GetAsync("vms/none"));
    }

    [Fact]
    public async Task A_put_value_reads_back_with_its_revision()
    {
        var revision = await Store.PutAsync("vms/vm1", """{"ram":512}""");
        var entry = await Store.GetAsync("vms/vm1");
        Assert.NotNull(entry);
        Assert.Equal("vms/vm1", entry.Key);
        Assert.Equal("""{"ram":512}""", entry.ValueText);
        Assert.Equal(revision, entry.Revision);
    }

    [Fact]
    public async Task Revisions_increase_with_every_write_and_change_the_key_revision()
    {
        var first = await Store.PutAsync("hosts/cpu1", "a");
        var second = await Store.PutAsync("hosts/cpu2", "b");
        var third = await Store.PutAsync("hosts/cpu1", "c");
        Assert.True(first < second && second < third, $"expected increasing revisions, got {first}, {second}, {third}");
        Assert.Equal(third, (await Store.GetAsync("hosts/cpu1"))!.Revision);
        Assert.Equal(second, (await Store.GetAsync("hosts/cpu2"))!.Revision);
    }

    [Fact]
    public async Task List_returns_only_the_prefix_sorted_by_key()
    {
        await Store.PutAsync("vms/b", "2");
        await Store.PutAsync("vms/a", "1");
        await Store.PutAsync("vmsx/c", "no");
        await Store.PutAsync("jobs/1", "no");
        var list = await Store.ListAsync("vms/");
        Assert.Equal(["vms/a", "vms/b"], list.Select(e => e.Key));
        Assert.Equal(["1", "2"], list.Select(e => e.ValueText));
    }

    [Fact]
    public async Task Delete_removes_the_key_and_says_whether_it_existed()
    {
        await Store.PutAsync("jobs/000001", "{}");
        Assert.True(await Store.DeleteAsync("jobs/000001"));
        Assert.Null(await Store.GetAsync("jobs/000001"));
        Assert.False(await Store.DeleteAsync("jobs/000001"));
    }

    [Fact]
    public async Task A_put_with_the_current_revision_succeeds_and_a_stale_one_conflicts()
    {
        var r1 = await Store.PutAsync("vms/vm1", "v1");
        var r2 = await Store.PutAsync("vms/vm1", "v2", expectedRevision: r1);
        Assert.True(r2 > r1);
        var conflict = await Assert.ThrowsAsync<StoreConflictException>(() => Store.PutAsync("vms/vm1", "v3", expectedRevision: r1));
        Assert.Contains("vms/vm1", conflict.Keys);
        Assert.Equal("v2", (await Store.GetAsync("vms/vm1"))!.ValueText);
    }

    [Fact]
    public async Task Expected_revision_zero_creates_only_when_the_key_is_absent()
    {
        await Store.PutAsync("vms/new", "first", expectedRevision: 0);
        await Assert.ThrowsAsync<StoreConflictException>(() => Store.PutAsync("vms/new", "second", expectedRevision: 0));
        Assert.Equal("first", (await Store.GetAsync("vms/new"))!.ValueText);
    }

    [Fact]
    public async Task Two_writers_racing_with_the_same_expected_revision_have_exactly_one_winner()
    {
        for (var round = 0; round < 5; round++)
        {
            var key = $"vms/race{round}";
            var start = await Store.PutAsync(key, "start");
            using var go = new ManualResetEventSlim();
            var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
            {
                go.Wait();
                try
                {
                    await Store.PutAsync(key, $"writer{w}", expectedRevision: start);
                    return true;
                }
                catch (StoreConflictException)
                {
                    return false;
                }
            })).ToArray();
            go.Set();
            var won = await Task.WhenAll(writers);
            Assert.Equal(1, won.Count(w => w));
            Assert.Equal($"writer{Array.IndexOf(won, true)}", (await Store.GetAsync(key))!.ValueText);
        }
    }

    [Fact]
    public async Task A_delete_with_a_stale_revision_conflicts_and_keeps_the_key()
    {
        var r1 = await Store.PutAsync("vms/vm1", "v1");
        await Store.PutAsync("vms/vm1", "v2");
        await Assert.ThrowsAsync<StoreConflictException>(() => Store.DeleteAsync("vms/vm1", r1));
        Assert.NotNull(await Store.GetAsync("vms/vm1"));
    }

    [Fact]
    public async Task A_transaction_applies_all_its_operations_at_one_revision()
    {
        var vm = await Store.PutAsync("vms/vm1", "stopped");
        await Store.PutAsync("jobs/old", "done");
        var revision = await Store.TransactAsync([
            StoreOperation.Put("vms/vm1", "running", vm),
            StoreOperation.Put("jobs/000002", "succeeded", 0),
            StoreOperation.Delete("jobs/old"),
        ]);
        Assert.Equal("running", (await Store.GetAsync("vms/vm1"))!.ValueText);
        Assert.Equal(revision, (await Store.GetAsync("vms/vm1"))!.Revision);
        Assert.Equal(revision, (await Store.GetAsync("jobs/000002"))!.Revision);
        Assert.Null(await Store.GetAsync("jobs/old"));
    }

    [Fact]
    public async Task A_transaction_with_one_failed_compare_applies_nothing()
    {
        var vm = await Store.PutAsync("vms/vm1", "stopped");
        await Store.PutAsync("vms/vm1", "moved by someone else");
        await Store.PutAsync("jobs/keep", "x");
        await Assert.ThrowsAsync<StoreConflictException>(() => Store.TransactAsync([
            StoreOperation.Put("vms/vm1", "running", vm),
            StoreOperation.Put("jobs/000003", "succeeded", 0),
            StoreOperation.Delete("jobs/keep"),
        ]));
        Assert.Equal("moved by someone else", (await Store.GetAsync("vms/vm1"))!.ValueText);
        Assert.Null(await Store.GetAsync("jobs/000003"));
        Assert.NotNull(await Store.GetAsync("jobs/keep"));
    }

    [Fact]
    public async Task A_check_only_operation_guards_a_transaction()
    {
        var host = await Store.PutAsync("hosts/cpu1", "alive");
        await Store.TransactAsync([StoreOperation.Check("hosts/cpu1", host), StoreOperation.Put("vms/vm1", "on cpu1")]);
        await Store.PutAsync("hosts/cpu1", "dead");
        await Assert.ThrowsAsync<StoreConflictException>(() =>
            Store.TransactAsync([StoreOperation.Check("hosts/cpu1", host), StoreOperation.Put("vms/vm2", "on cpu1")]));
        Assert.Null(await Store.GetAsync("vms/vm2"));
    }

    [Fact]
    public async Task Watch_sees_puts_and_deletes_in_order()
    {
        var start = await Store.PutAsync("other/x", "ignored");
        await Store.PutAsync("vms/a", "1");
        await Store.PutAsync("other/y", "ignored");
        await Store.PutAsync("vms/b", "2");
        await Store.DeleteAsync("vms/a");
        var tx = await Store.TransactAsync([StoreOperation.Put("vms/c", "3"), StoreOperation.Delete("vms/b")]);

        using var timeout = new CancellationTokenSource(s_watchTimeout);
        var seen = new List<StoreEvent>();
        try
        {
            await foreach (var e in Store.WatchAsync("vms/", start, timeout.Token))
            {
                seen.Add(e);
                if (seen.Count == 5)
                    break;
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"Expected 5 events within {s_watchTimeout.TotalSeconds} s, saw: {string.Join(", ", seen)}");
        }
        Assert.Equal(
            ["Put vms/a 1", "Put vms/b 2", "Delete vms/a ", "Put vms/c 3", "Delete vms/b "],
            seen.Select(e => $"{e.Kind} {e.Key} {e.ValueText}"));
        Assert.True(seen.Zip(seen.Skip(1)).All(p => p.First.Revision <= p.Second.Revision));
        Assert.Equal(tx, seen[^1].Revision);
        Assert.Equal(tx, seen[^2].Revision);
    }

    [Fact]
    public async Task Watch_from_now_sees_a_later_put()
    {
        using var timeout = new CancellationTokenSource(s_watchTimeout);
        await using var events = Store.WatchAsync("jobs/", 0, timeout.Token).GetAsyncEnumerator(timeout.Token);
        var next = events.MoveNextAsync().AsTask();
        // The watch may start after this put or before; either way a later put is seen, so keep writing until it is.
        var n = 0;
        while (!next.IsCompleted && !timeout.IsCancellationRequested)
        {
            await Store.PutAsync("jobs/tick", $"{n++}");
            await Task.WhenAny(next, Task.Delay(200, timeout.Token));
        }
        Assert.True(await next, "expected an event");
        Assert.Equal("jobs/tick", events.Current.Key);
    }

    public static TheoryData<string> HostileKeys => new()
    {
        "",
        new string('k', StoreKeys.MaxKeyBytes + 1),
        "vms/\u0000vm1",
        "vms/vm1\n",
        "vms/\u007f",
    };

    [Theory]
    [MemberData(nameof(HostileKeys))]
    public async Task Hostile_keys_are_refused(string key)
    {
        await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.PutAsync(key, "x"));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.GetAsync(key));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.DeleteAsync(key));
    }

    [Fact]
    public async Task A_key_with_a_lone_surrogate_is_refused()
    {
        // Not in the theory: test-case serialisation turns a lone surrogate into U+FFFD.
        var e = await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.PutAsync("vms/\ud800x", "x"));
        Assert.Contains("surrogate", e.Message);
    }

    [Fact]
    public async Task A_key_of_exactly_the_limit_is_accepted()
    {
        var key = new string('k', StoreKeys.MaxKeyBytes);
        await Store.PutAsync(key, "x");
        Assert.Equal("x", (await Store.GetAsync(key))!.ValueText);
    }

    [Fact]
    public async Task A_value_over_one_MiB_is_refused_with_its_size()
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() => Store.PutAsync("vms/big", new byte[StoreKeys.MaxValueBytes + 1]));
        Assert.Contains("1048577", e.Message);
        Assert.Null(await Store.GetAsync("vms/big"));
    }

    [Fact]
    public async Task An_empty_value_round_trips()
    {
        await Store.PutAsync("vms/empty", ReadOnlyMemory<byte>.Empty);
        Assert.Equal(0, (await Store.GetAsync("vms/empty"))!.Value.Length);
    }
}
