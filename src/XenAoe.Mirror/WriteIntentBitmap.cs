namespace XenAoe.Mirror;

/// <summary>
/// One bit per region of the mirror: set (and persisted on the legs) before a write to the region is sent, cleared lazily once
/// the region has been quiet for a cleaner pass and both legs are in step. After a leg outage or a host crash, only regions whose
/// bit is set can differ between the legs, so only they are resynced (md's internal bitmap, DRBD's activity log).
/// Thread-safe through one lock; the hot path takes it twice per write (begin/end), never across I/O.
/// </summary>
public sealed class WriteIntentBitmap
{
    private const int BitsPerBlock = MirrorSuperblock.Length * 8;

    private readonly object _lock = new();
    private readonly ulong[] _dirty;
    private readonly ulong[] _touched;
    private readonly int[] _inflight;
    private readonly int[] _writesStarted;
    private readonly long[] _blockVersion;
    private readonly long[] _blockPersisted;

    public WriteIntentBitmap(long regions, int regionSize)
    {
        Regions = regions;
        RegionSize = regionSize;
        _dirty = new ulong[(regions + 63) / 64];
        _touched = new ulong[_dirty.Length];
        _inflight = new int[regions];
        _writesStarted = new int[regions];
        var blocks = (regions + BitsPerBlock - 1) / BitsPerBlock;
        _blockVersion = new long[blocks];
        _blockPersisted = new long[blocks];
    }

    public long Regions { get; }
    public int RegionSize { get; }
    public int Blocks => _blockVersion.Length;

    public long DirtyCount
    {
        get
        {
            lock (_lock)
                return _dirty.Sum(w => (long)System.Numerics.BitOperations.PopCount(w));
        }
    }

    public (long First, long Last) RegionsOf(long offset, long length) => (offset / RegionSize, (offset + length - 1) / RegionSize);

    /// <summary>
    /// Registers a write to [first, last] and returns, per bitmap block that had to change, the version that must be on disk
    /// before the write may be sent (empty when every bit was already set and persisted).
    /// </summary>
    public List<(int Block, long Version)>? BeginWrite(long first, long last)
    {
        List<(int, long)>? needed = null;
        lock (_lock)
        {
            for (var r = first; r <= last; r++)
            {
                _inflight[r]++;
                _writesStarted[r]++;
                _touched[r >> 6] |= 1UL << (int)(r & 63);
                var block = (int)(r / BitsPerBlock);
                if ((_dirty[r >> 6] & 1UL << (int)(r & 63)) == 0)
                {
                    _dirty[r >> 6] |= 1UL << (int)(r & 63);
                    _blockVersion[block]++;
                }
                if (_blockPersisted[block] < _blockVersion[block] && (needed is null || needed[^1].Item1 != block))
                    (needed ??= []).Add((block, _blockVersion[block]));
            }
        }
        return needed;
    }

    public void EndWrite(long first, long last)
    {
        lock (_lock)
        {
            for (var r = first; r <= last; r++)
                _inflight[r]--;
        }
    }

    /// <summary>Counts writes started in a region and whether any is in flight: resync copies optimistically and retries on change.</summary>
    public (int Started, bool Busy) WriteState(long region)
    {
        lock (_lock)
            return (_writesStarted[region], _inflight[region] > 0);
    }

    public bool IsDirty(long region)
    {
        lock (_lock)
            return (_dirty[region >> 6] & 1UL << (int)(region & 63)) != 0;
    }

    public void MarkDirty(long first, long last)
    {
        lock (_lock)
        {
            for (var r = first; r <= last; r++)
            {
                if ((_dirty[r >> 6] & 1UL << (int)(r & 63)) == 0)
                {
                    _dirty[r >> 6] |= 1UL << (int)(r & 63);
                    _blockVersion[r / BitsPerBlock]++;
                }
            }
        }
    }

    /// <summary>Clears one region after resync copied it, unless a write arrived meanwhile.</summary>
    public void ClearIfQuiet(long region, int startedBefore)
    {
        lock (_lock)
        {
            if (_writesStarted[region] == startedBefore && _inflight[region] == 0)
                Clear(region);
        }
    }

    /// <summary>A cleaner pass: clears regions with no write since the previous pass and none in flight. Returns how many were cleared.</summary>
    public int Sweep()
    {
        var cleared = 0;
        lock (_lock)
        {
            for (long r = 0; r < Regions; r++)
            {
                var bit = 1UL << (int)(r & 63);
                if ((_dirty[r >> 6] & bit) == 0)
                    continue;
                if ((_touched[r >> 6] & bit) != 0)
                    _touched[r >> 6] &= ~bit;
                else if (_inflight[r] == 0)
                {
                    Clear(r);
                    cleared++;
                }
            }
        }
        return cleared;
    }

    public IEnumerable<long> DirtyRegions()
    {
        for (long r = 0; r < Regions; r++)
        {
            if (IsDirty(r))
                yield return r;
        }
    }

    /// <summary>Blocks whose in-memory version is ahead of what was persisted, with the version to persist.</summary>
    public List<(int Block, long Version)> UnpersistedBlocks()
    {
        lock (_lock)
            return [.. Enumerable.Range(0, Blocks).Where(b => _blockPersisted[b] < _blockVersion[b]).Select(b => (b, _blockVersion[b]))];
    }

    public bool IsPersisted(int block, long version)
    {
        lock (_lock)
            return _blockPersisted[block] >= version;
    }

    /// <summary>Copies one block's bits into <paramref name="buffer"/> (4 KiB) and returns the version they represent.</summary>
    public long Snapshot(int block, Span<byte> buffer)
    {
        lock (_lock)
        {
            buffer.Clear();
            var firstWord = block * (BitsPerBlock / 64);
            var words = Math.Min(BitsPerBlock / 64, _dirty.Length - firstWord);
            for (var i = 0; i < words; i++)
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(buffer[(i * 8)..], _dirty[firstWord + i]);
            return _blockVersion[block];
        }
    }

    public void MarkPersisted(int block, long version)
    {
        lock (_lock)
            _blockPersisted[block] = Math.Max(_blockPersisted[block], version);
    }

    /// <summary>Loads bits read from a leg (OR-ed in: the union of both legs' bitmaps covers every region that may differ).</summary>
    public void Merge(int block, ReadOnlySpan<byte> buffer)
    {
        lock (_lock)
        {
            var firstWord = block * (BitsPerBlock / 64);
            var words = Math.Min(BitsPerBlock / 64, _dirty.Length - firstWord);
            for (var i = 0; i < words; i++)
                _dirty[firstWord + i] |= System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(buffer[(i * 8)..]);
            if (firstWord + words == _dirty.Length && Regions % 64 != 0)
                _dirty[^1] &= (1UL << (int)(Regions % 64)) - 1;
            _blockVersion[block]++;
        }
    }

    private void Clear(long r)
    {
        _dirty[r >> 6] &= ~(1UL << (int)(r & 63));
        _blockVersion[r / BitsPerBlock]++;
    }
}
