using System.Text;

namespace XenAoe.Control.Store;

/// <summary>
/// Leadership for the single-controller SQLite store: an exclusive lock (<c>flock</c>, which .NET takes for
/// <see cref="FileShare.None"/> on Linux) on a file beside the database. A second controller on the same file waits, polling;
/// the kernel releases the lock when the holder's process dies, so no lease is needed. The holder writes its id into
/// <c>LOCKPATH.id</c> (a plain file: the locked file itself cannot be opened by others).
/// </summary>
public sealed class FileLockLeaderElection : ILeaderElection
{
    private readonly TimeSpan _pollInterval;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private FileStream? _held;
    private CancellationTokenSource _lost;

    /// <param name="pollInterval">How often a standby retries the lock; default 200 ms.</param>
    public FileLockLeaderElection(string lockPath, TimeSpan? pollInterval = null, TimeProvider? time = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(lockPath);
        LockPath = lockPath;
        _pollInterval = pollInterval ?? TimeSpan.FromMilliseconds(200);
        _time = time ?? TimeProvider.System;
        _lost = new CancellationTokenSource();
        _lost.Cancel();
    }

    public string LockPath { get; }

    public bool IsLeader
    {
        get
        {
            lock (_lock)
                return _held is not null;
        }
    }

    public CancellationToken LeadershipLost
    {
        get
        {
            lock (_lock)
                return _lost.Token;
        }
    }

    public async Task CampaignAsync(string candidateId, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(candidateId);
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            lock (_lock)
            {
                if (_held is not null)
                    return;
            }
            FileStream? stream = null;
            try
            {
                stream = new FileStream(LockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException)
            {
                // Another controller holds the lock: wait and retry.
            }
            if (stream is not null)
            {
                await File.WriteAllTextAsync(LockPath + ".id", candidateId + "\n", Encoding.UTF8, ct).ConfigureAwait(false);
                lock (_lock)
                {
                    _held = stream;
                    _lost = new CancellationTokenSource();
                }
                return;
            }
            await Task.Delay(_pollInterval, _time, ct).ConfigureAwait(false);
        }
    }

    public Task ResignAsync(CancellationToken ct = default)
    {
        Release(clear: true);
        return Task.CompletedTask;
    }

    public async Task<string?> GetLeaderAsync(CancellationToken ct = default)
    {
        if (IsLeader)
            return ReadId();
        try
        {
            // Readable by others only while nobody holds the exclusive lock: then nobody leads.
            await using var probe = new FileStream(LockPath, FileMode.Open, FileAccess.Read, FileShare.None);
            return null;
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (IOException)
        {
            // Locked: someone leads.
            return ReadId();
        }
    }

    private string? ReadId()
    {
        try
        {
            return File.ReadLines(LockPath + ".id").FirstOrDefault();
        }
        catch (FileNotFoundException)
        {
            return null;
        }
    }

    public ValueTask DisposeAsync()
    {
        Release(clear: false);
        return ValueTask.CompletedTask;
    }

    private void Release(bool clear)
    {
        FileStream? held;
        CancellationTokenSource lost;
        lock (_lock)
        {
            held = _held;
            _held = null;
            lost = _lost;
        }
        if (held is null)
            return;
        if (clear)
            File.Delete(LockPath + ".id");
        held.Dispose();
        lost.Cancel();
    }
}
