using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using XenAoe.Control.Jobs;
using XenAoe.Control.Model;
using XenAoe.Control.Store;

namespace XenAoe.Control;

/// <summary>
/// The inventory and the jobs as typed documents in the state store: <c>hosts/NAME</c>, <c>disks/NAME</c> (with their shelves'
/// claims, <c>shelves/N</c>), <c>vms/NAME</c>, <c>jobs/ID</c>; <see cref="Join.JoinTokens"/> keeps the cluster's identity and
/// join tokens beside them. Every change is a compare-and-swap on the document's revision, retried on conflict, so two controllers or
/// two jobs changing the same record never lose each other's update.
/// </summary>
public sealed class ControllerState(IStateStore store, TimeProvider? time = null)
{
    private const int MaxRetries = 20;
    private static readonly ControlJsonContext Json = ControlJsonContext.Default;

    public IStateStore Store { get; } = store;

    public TimeProvider Time { get; } = time ?? TimeProvider.System;

    public Task<IReadOnlyList<HostRecord>> HostsAsync(CancellationToken ct) => ListAsync("hosts/", Json.HostRecord, ct);

    public Task<HostRecord?> HostAsync(string name, CancellationToken ct) => GetAsync($"hosts/{name}", Json.HostRecord, ct);

    public Task PutHostAsync(HostRecord host, CancellationToken ct) => PutAsync($"hosts/{host.Name}", host, Json.HostRecord, ct);

    public Task<HostRecord?> UpdateHostAsync(string name, Func<HostRecord, HostRecord?> change, CancellationToken ct) =>
        UpdateAsync($"hosts/{name}", change, Json.HostRecord, ct);

    /// <summary>
    /// Creates the host's record, or updates the record of a host registering again (a restarted or re-addressed machine): what
    /// <paramref name="update"/> changes; its state (up, dead, maintenance) stays the heartbeat monitor's and the operator's.
    /// </summary>
    public async Task<HostRecord> RegisterHostAsync(HostRecord created, Func<HostRecord, HostRecord> update, CancellationToken ct)
    {
        for (var attempt = 0; attempt < MaxRetries; attempt++)
        {
            var entry = await Store.GetAsync($"hosts/{created.Name}", ct).ConfigureAwait(false);
            var record = entry is null ? created : update(JsonSerializer.Deserialize(entry.Value.Span, Json.HostRecord)!);
            try
            {
                await Store.PutAsync($"hosts/{created.Name}", JsonSerializer.SerializeToUtf8Bytes(record, Json.HostRecord), entry?.Revision ?? 0, ct).ConfigureAwait(false);
                return record;
            }
            catch (StoreConflictException)
            {
                // Registered or changed in between (a heartbeat): apply the registration to that version.
            }
        }
        throw new ControlException($"hosts/{created.Name} changes too often to register", 503);
    }

    /// <summary>
    /// Removes a host's record; refused (409) while a VM is placed there or a job works on the host, naming them.
    /// </summary>
    public Task RemoveHostAsync(string name, CancellationToken ct) => RemoveAsync($"hosts/{name}", $"no host named {name}", async entry =>
    {
        await RefuseIfBusyAsync("host", name, ct).ConfigureAwait(false);
        var placed = (await VmsAsync(ct).ConfigureAwait(false)).Where(v => v.Host == name).Select(v => v.Name).ToList();
        if (placed.Count > 0)
            throw new ControlException($"{name} still has VMs placed on it: {string.Join(", ", placed)}; move them off (`xenaoe host evacuate {name}`) or delete them first", 409);
        return [];
    }, ct);

    /// <summary>The claim of an AoE shelf (<c>shelves/N</c>, naming its disk server): two servers never get one shelf, even registering at once.</summary>
    private static string ShelfKey(int shelf) => $"shelves/{shelf}";

    /// <summary>
    /// Creates the disk server's record with <paramref name="shelf"/> (or, when null, the lowest free shelf from 1), claimed in
    /// the same transaction; or updates the record of a server registering again, which keeps its shelf (its volumes' addresses
    /// carry it) and its drain. <paramref name="record"/> makes the record from the current one (null: new) and the shelf.
    /// </summary>
    public async Task<DiskServerRecord> RegisterDiskServerAsync(string name, ushort? shelf, Func<DiskServerRecord?, ushort, DiskServerRecord> record, CancellationToken ct)
    {
        for (var attempt = 0; attempt < MaxRetries; attempt++)
        {
            var entry = await Store.GetAsync($"disks/{name}", ct).ConfigureAwait(false);
            if (entry is not null)
            {
                var current = JsonSerializer.Deserialize(entry.Value.Span, Json.DiskServerRecord)!;
                if (shelf is { } wanted && wanted != current.Shelf)
                    throw new ControlException($"{name} has shelf {current.Shelf} (its volumes are e{current.Shelf}.N): remove it (`xenaoe disk remove {name}`) before it registers with shelf {wanted}", 409);
                var updated = record(current, current.Shelf);
                try
                {
                    await Store.PutAsync(entry.Key, JsonSerializer.SerializeToUtf8Bytes(updated, Json.DiskServerRecord), entry.Revision, ct).ConfigureAwait(false);
                    return updated;
                }
                catch (StoreConflictException)
                {
                    // A heartbeat or a drain changed it in between: register again on that version.
                    continue;
                }
            }
            // Servers registered before shelves were claimed have a record and no claim: both count.
            var owners = new Dictionary<int, string>();
            foreach (var disk in await DiskServersAsync(ct).ConfigureAwait(false))
                owners[disk.Shelf] = disk.Name;
            foreach (var claim in await Store.ListAsync("shelves/", ct).ConfigureAwait(false))
                owners[int.Parse(claim.Key["shelves/".Length..], CultureInfo.InvariantCulture)] = claim.ValueText;
            if (shelf is { } given && owners.TryGetValue(given, out var owner))
                throw new ControlException($"shelf {given} is {owner}'s: give {name} another one, or none (the controller picks the lowest free)", 409);
            var chosen = shelf ?? (ushort)(Enumerable.Range(1, 0xFFFE).FirstOrDefault(s => !owners.ContainsKey(s)) is > 0 and var free
                ? free : throw new ControlException("every AoE shelf is taken", 409));
            var created = record(null, chosen);
            try
            {
                await Store.TransactAsync(
                [
                    StoreOperation.Put($"disks/{name}", JsonSerializer.SerializeToUtf8Bytes(created, Json.DiskServerRecord), 0),
                    StoreOperation.Put(ShelfKey(chosen), name, 0),
                ], ct).ConfigureAwait(false);
                return created;
            }
            catch (StoreConflictException)
            {
                // Another server took this name or this shelf first: look again.
            }
        }
        throw new ControlException($"disks/{name} changes too often to register", 503);
    }

    /// <summary>
    /// Removes a disk server's record and its shelf claim; refused (409) while a VM disk has a leg there or a job (a drain)
    /// works on it, naming them.
    /// </summary>
    public Task RemoveDiskServerAsync(string name, CancellationToken ct) => RemoveAsync($"disks/{name}", $"no disk server named {name}", async entry =>
    {
        await RefuseIfBusyAsync("disk", name, ct).ConfigureAwait(false);
        var legs = (await VmsAsync(ct).ConfigureAwait(false))
            .SelectMany(v => v.Disks.Where(d => d.Legs.Any(l => l.DiskServer == name)).Select(d => $"{v.Name} disk {d.Id}")).ToList();
        if (legs.Count > 0)
            throw new ControlException($"{name} still holds legs of {string.Join(", ", legs)}; move them off (`xenaoe disk drain {name}`) or delete the VMs first", 409);
        var shelf = JsonSerializer.Deserialize(entry.Value.Span, Json.DiskServerRecord)!.Shelf;
        var claim = await Store.GetAsync(ShelfKey(shelf), ct).ConfigureAwait(false);
        return claim is not null && claim.ValueText == name ? [StoreOperation.Delete(claim.Key, claim.Revision)] : [];
    }, ct);

    private async Task RefuseIfBusyAsync(string family, string name, CancellationToken ct)
    {
        if (await Store.GetAsync($"{ActivePrefix}{family}/{name}", ct).ConfigureAwait(false) is { } marker
            && await JobAsync(marker.ValueText, ct).ConfigureAwait(false) is { IsFinished: false } job)
            throw new ControlException($"{name} is busy with job {job.Id} ({job.Kind}, {job.State.ToString().ToLowerInvariant()})", 409);
    }

    /// <summary>
    /// Deletes the record under <paramref name="key"/> with what <paramref name="check"/> adds, in one transaction on the revision
    /// checked: a record changed meanwhile (a heartbeat) is checked again. <paramref name="check"/> throws its refusal.
    /// </summary>
    private async Task RemoveAsync(string key, string missing, Func<StoreEntry, Task<IReadOnlyList<StoreOperation>>> check, CancellationToken ct)
    {
        for (var attempt = 0; attempt < MaxRetries; attempt++)
        {
            var entry = await Store.GetAsync(key, ct).ConfigureAwait(false) ?? throw new ControlException(missing, 404);
            var also = await check(entry).ConfigureAwait(false);
            try
            {
                await Store.TransactAsync([StoreOperation.Delete(entry.Key, entry.Revision), .. also], ct).ConfigureAwait(false);
                return;
            }
            catch (StoreConflictException)
            {
                // Changed in between: check again.
            }
        }
        throw new ControlException($"{key} changes too often to remove", 503);
    }

    public Task<IReadOnlyList<DiskServerRecord>> DiskServersAsync(CancellationToken ct) => ListAsync("disks/", Json.DiskServerRecord, ct);

    public Task<DiskServerRecord?> DiskServerAsync(string name, CancellationToken ct) => GetAsync($"disks/{name}", Json.DiskServerRecord, ct);

    public Task PutDiskServerAsync(DiskServerRecord disk, CancellationToken ct) => PutAsync($"disks/{disk.Name}", disk, Json.DiskServerRecord, ct);

    public Task<DiskServerRecord?> UpdateDiskServerAsync(string name, Func<DiskServerRecord, DiskServerRecord?> change, CancellationToken ct) =>
        UpdateAsync($"disks/{name}", change, Json.DiskServerRecord, ct);

    public Task<IReadOnlyList<VmRecord>> VmsAsync(CancellationToken ct) => ListAsync("vms/", Json.VmRecord, ct);

    public Task<VmRecord?> VmAsync(string name, CancellationToken ct) => GetAsync($"vms/{name}", Json.VmRecord, ct);

    /// <summary>Creates the VM record; false when one of that name exists.</summary>
    public async Task<bool> CreateVmAsync(VmRecord vm, CancellationToken ct)
    {
        try
        {
            await Store.PutAsync($"vms/{vm.Name}", JsonSerializer.SerializeToUtf8Bytes(vm, Json.VmRecord), expectedRevision: 0, ct).ConfigureAwait(false);
            return true;
        }
        catch (StoreConflictException)
        {
            return false;
        }
    }

    public Task<VmRecord?> UpdateVmAsync(string name, Func<VmRecord, VmRecord?> change, CancellationToken ct) =>
        UpdateAsync($"vms/{name}", change, Json.VmRecord, ct);

    public Task DeleteVmAsync(string name, CancellationToken ct) => Store.DeleteAsync($"vms/{name}", null, ct);

    /// <summary>Every job, oldest first. A record that cannot be parsed at all is failed in the store (its text kept in its log) and listed so.</summary>
    public async Task<IReadOnlyList<JobRecord>> JobsAsync(CancellationToken ct)
    {
        var jobs = new List<JobRecord>();
        foreach (var entry in await Store.ListAsync("jobs/", ct).ConfigureAwait(false))
            jobs.Add(await ReadJobAsync(entry, ct).ConfigureAwait(false));
        return [.. jobs.OrderBy(j => j.Id, StringComparer.Ordinal)];
    }

    /// <summary>
    /// The unfinished jobs, oldest first, found through the targets' markers (<c>active/KIND/TARGET</c>): the cost follows the
    /// number of targets, not the job history. A marker whose job is finished or gone (left by an older controller) is removed.
    /// </summary>
    public async Task<IReadOnlyList<JobRecord>> ActiveJobsAsync(CancellationToken ct)
    {
        var jobs = new List<JobRecord>();
        foreach (var marker in await Store.ListAsync(ActivePrefix, ct).ConfigureAwait(false))
        {
            if (await JobAsync(marker.ValueText, ct).ConfigureAwait(false) is { IsFinished: false } job)
            {
                jobs.Add(job);
                continue;
            }
            try
            {
                await Store.DeleteAsync(marker.Key, marker.Revision, ct).ConfigureAwait(false);
            }
            catch (StoreConflictException)
            {
                // A new job took the target meanwhile: its marker stays.
            }
        }
        return [.. jobs.DistinctBy(j => j.Id).OrderBy(j => j.Id, StringComparer.Ordinal)];
    }

    /// <summary>The prefix of the targets' markers; a change under it (a job submitted or finished) wakes the job runner.</summary>
    public const string ActivePrefix = "active/";

    /// <summary>
    /// The marker of a job's target, <c>active/vm/vm1</c> for <c>vm-migrate</c> on vm1: the kind's name up to its dash is the
    /// target's family (<c>vm</c>, <c>host</c>, <c>disk</c>); one unfinished job per target. Null for a kind without one.
    /// </summary>
    private static string? MarkerKey(string kind, string target) =>
        kind.IndexOf('-', StringComparison.Ordinal) is > 0 and var dash && target.Length > 0 ? $"{ActivePrefix}{kind[..dash]}/{target}" : null;

    public async Task<JobRecord?> JobAsync(string id, CancellationToken ct) =>
        await Store.GetAsync($"jobs/{id}", ct).ConfigureAwait(false) is { } entry ? await ReadJobAsync(entry, ct).ConfigureAwait(false) : null;

    public Task<JobRecord?> UpdateJobAsync(string id, Func<JobRecord, JobRecord?> change, CancellationToken ct) =>
        UpdateAsync($"jobs/{id}", change, Json.JobRecord, ct);

    /// <summary>
    /// Finishes a job: its record changed by <paramref name="change"/> (which must finish it) and its target's marker removed in
    /// one transaction, so the marker index holds exactly the unfinished jobs. A marker naming a newer job is left alone.
    /// </summary>
    public async Task<JobRecord?> FinishJobAsync(string id, Func<JobRecord, JobRecord> change, CancellationToken ct)
    {
        for (var attempt = 0; attempt < MaxRetries; attempt++)
        {
            var entry = await Store.GetAsync($"jobs/{id}", ct).ConfigureAwait(false);
            if (entry is null)
                return null;
            var current = await ReadJobAsync(entry, ct).ConfigureAwait(false);
            var finished = change(current);
            if (!finished.IsFinished)
                throw new ArgumentException($"the change of job {id} must finish it", nameof(change));
            var markerKey = MarkerKey(current.Kind, current.Target);
            var marker = markerKey is null ? null : await Store.GetAsync(markerKey, ct).ConfigureAwait(false);
            List<StoreOperation> operations = [StoreOperation.Put(entry.Key, JsonSerializer.SerializeToUtf8Bytes(finished, Json.JobRecord), entry.Revision)];
            if (marker is not null && marker.ValueText == id)
                operations.Add(StoreOperation.Delete(marker.Key, marker.Revision));
            try
            {
                await Store.TransactAsync(operations, ct).ConfigureAwait(false);
                return finished;
            }
            catch (StoreConflictException)
            {
                // The job was updated (a log line) or its marker moved in between: apply the change again.
            }
        }
        throw new ControlException($"job {id} changes too often to finish", 503);
    }

    /// <summary>
    /// Deletes finished jobs beyond the newest <paramref name="keep"/> finished ones and those finished before
    /// <paramref name="finishedBefore"/>; unfinished jobs are never touched. Returns how many were deleted.
    /// </summary>
    public async Task<int> PruneJobsAsync(int keep, DateTimeOffset finishedBefore, CancellationToken ct)
    {
        var finished = new List<(StoreEntry Entry, JobRecord Job)>();
        foreach (var entry in await Store.ListAsync("jobs/", ct).ConfigureAwait(false))
        {
            if (await ReadJobAsync(entry, ct).ConfigureAwait(false) is { IsFinished: true } job)
                finished.Add((entry, job));
        }
        // Keys sort in creation order: the newest are at the end.
        var doomed = finished.Take(Math.Max(0, finished.Count - keep))
            .Concat(finished.Skip(Math.Max(0, finished.Count - keep)).Where(f => f.Job.FinishedAt < finishedBefore))
            .ToList();
        var deleted = 0;
        // etcd refuses transactions of more than 128 operations by default.
        foreach (var batch in doomed.Chunk(100))
        {
            try
            {
                await Store.TransactAsync([.. batch.Select(f => StoreOperation.Delete(f.Entry.Key, f.Entry.Revision))], ct).ConfigureAwait(false);
                deleted += batch.Length;
            }
            catch (StoreConflictException)
            {
                // One of them changed after being read (only a finished job's own rewrite can): the next pass takes them.
            }
        }
        return deleted;
    }

    /// <summary>
    /// The job in <paramref name="entry"/>. One this controller cannot parse (damaged, or written by something else) is replaced,
    /// compare-and-swap on its revision, by a failed job that says why and keeps the original text in its log: nothing is lost,
    /// and no runner or listing trips over it again.
    /// </summary>
    private async Task<JobRecord> ReadJobAsync(StoreEntry entry, CancellationToken ct)
    {
        try
        {
            return JsonSerializer.Deserialize(entry.Value.Span, Json.JobRecord) ?? throw new JsonException("the record is null");
        }
        catch (JsonException e)
        {
            var now = Time.GetUtcNow();
            var failed = new JobRecord
            {
                Id = entry.Key["jobs/".Length..], Kind = "unreadable", Target = "", Format = JobRecord.CurrentFormat, State = JobState.Failed,
                CreatedAt = now, FinishedAt = now, Error = $"this controller cannot read the job's record ({e.Message}); its text is in the log",
                Log = [new JobLogLine(now, entry.ValueText.Length <= 4096 ? entry.ValueText : entry.ValueText[..4096] + " ...")],
            };
            try
            {
                await Store.PutAsync(entry.Key, JsonSerializer.SerializeToUtf8Bytes(failed, Json.JobRecord), entry.Revision, ct).ConfigureAwait(false);
            }
            catch (StoreConflictException)
            {
                // Rewritten meanwhile: the next read sees the new version.
            }
            return failed;
        }
    }

    /// <summary>
    /// Records a new pending job with the next id (zero-padded so ids sort in creation order). Refuses a second unfinished job on
    /// the same target: one operation at a time per VM or host. The target's marker (<c>active/vm/NAME</c>, naming its latest job)
    /// is written in the same transaction as the job, compared against the marker read, so two submitters racing for one
    /// target cannot both win.
    /// </summary>
    public async Task<JobRecord> SubmitJobAsync<TParameters>(JobKind<TParameters> kind, string target, TParameters parameters, CancellationToken ct)
    {
        var markerKey = MarkerKey(kind.Name, target) ?? throw new ArgumentException($"job kind '{kind.Name}' names no target kind", nameof(kind));
        for (var attempt = 0; attempt < MaxRetries; attempt++)
        {
            var marker = await Store.GetAsync(markerKey, ct).ConfigureAwait(false);
            if (marker is not null && await JobAsync(marker.ValueText, ct).ConfigureAwait(false) is { IsFinished: false } busy)
                throw new ControlException($"{target} is busy with job {busy.Id} ({busy.Kind}, {busy.State.ToString().ToLowerInvariant()})", 409);
            var counter = await Store.GetAsync("meta/next-job", ct).ConfigureAwait(false);
            var next = counter is null ? 1 : long.Parse(counter.ValueText, CultureInfo.InvariantCulture);
            var job = new JobRecord
            {
                Id = next.ToString("D6", CultureInfo.InvariantCulture), Kind = kind.Name, Target = target, Format = JobRecord.CurrentFormat,
                Parameters = kind.Write(parameters), CreatedAt = Time.GetUtcNow(),
            };
            try
            {
                await Store.TransactAsync(
                [
                    StoreOperation.Put("meta/next-job", (next + 1).ToString(CultureInfo.InvariantCulture), counter?.Revision ?? 0),
                    StoreOperation.Put($"jobs/{job.Id}", JsonSerializer.SerializeToUtf8Bytes(job, Json.JobRecord), 0),
                    StoreOperation.Put(markerKey, job.Id, marker?.Revision ?? 0),
                ], ct).ConfigureAwait(false);
                return job;
            }
            catch (StoreConflictException)
            {
                // Another submitter took this id or this target first: look again.
            }
        }
        throw new ControlException("could not record the job: the store is too busy", 503);
    }

    internal async Task<T?> GetAsync<T>(string key, JsonTypeInfo<T> type, CancellationToken ct) where T : class
    {
        var entry = await Store.GetAsync(key, ct).ConfigureAwait(false);
        return entry is null ? null : JsonSerializer.Deserialize(entry.Value.Span, type);
    }

    internal async Task<IReadOnlyList<T>> ListAsync<T>(string prefix, JsonTypeInfo<T> type, CancellationToken ct) where T : class =>
        [.. (await Store.ListAsync(prefix, ct).ConfigureAwait(false)).Select(e => JsonSerializer.Deserialize(e.Value.Span, type)!)];

    private Task PutAsync<T>(string key, T value, JsonTypeInfo<T> type, CancellationToken ct) =>
        Store.PutAsync(key, JsonSerializer.SerializeToUtf8Bytes(value, type), null, ct);

    /// <summary>Read, change, compare-and-swap, retried on conflict. <paramref name="change"/> returning null leaves it as is.</summary>
    internal async Task<T?> UpdateAsync<T>(string key, Func<T, T?> change, JsonTypeInfo<T> type, CancellationToken ct) where T : class
    {
        for (var attempt = 0; attempt < MaxRetries; attempt++)
        {
            var entry = await Store.GetAsync(key, ct).ConfigureAwait(false);
            if (entry is null)
                return null;
            var current = JsonSerializer.Deserialize(entry.Value.Span, type)!;
            if (change(current) is not { } updated)
                return current;
            try
            {
                await Store.PutAsync(key, JsonSerializer.SerializeToUtf8Bytes(updated, type), entry.Revision, ct).ConfigureAwait(false);
                return updated;
            }
            catch (StoreConflictException)
            {
                // Someone else changed it in between: apply the change to their version.
            }
        }
        throw new ControlException($"{key} changes too often to update", 503);
    }
}

/// <summary>A request the controller refuses, with the HTTP status it maps to and a reason a user can act on.</summary>
public class ControlException(string message, int status = 400, Exception? inner = null) : Exception(message, inner)
{
    public int Status { get; } = status;
}
