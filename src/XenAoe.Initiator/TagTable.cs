namespace XenAoe.Initiator;

/// <summary>
/// The fixed table of outstanding ATA frames of one device, addressed by tag, so a reply finds its frame with one array index
/// and no allocation. A tag is bit 31 (userland: the Linux initiator ignores replies carrying it, so both can share a host),
/// bit 30 clear (bit 30 marks control commands), 20 bits of per-slot generation and 10 bits of slot index. The generation
/// advances each time a slot is reused, so a late reply to an earlier use of the slot does not match; a tag recurs only after
/// a million reuses of one slot, far beyond the 30 s a target remembers write replies for. Generations start at a random seed
/// so a restarted initiator does not replay its predecessor's tags. Not thread-safe: the owning device's lock guards it.
/// </summary>
internal sealed class TagTable
{
    public const uint UserlandBit = 0x8000_0000;
    public const uint ControlBit = 0x4000_0000;
    public const int IndexBits = 10;
    public const int MaxCapacity = 1 << IndexBits;
    private const uint IndexMask = MaxCapacity - 1;
    private const uint GenerationMask = (1u << 20) - 1;

    private readonly uint[] _generation;
    private readonly bool[] _live;
    private readonly int[] _free;
    private int _freeCount;

    public TagTable(int capacity, uint seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacity, MaxCapacity);
        _generation = new uint[capacity];
        _live = new bool[capacity];
        _free = new int[capacity];
        for (var i = 0; i < capacity; i++)
        {
            _generation[i] = (seed + (uint)i * 0x9E37u) & GenerationMask;
            // Lowest indexes on top: live slots cluster at the start, so a scan can stop after the last live one.
            _free[i] = capacity - 1 - i;
        }
        _freeCount = capacity;
    }

    public int Capacity => _generation.Length;

    public int Live => Capacity - _freeCount;

    public bool IsFull => _freeCount == 0;

    /// <summary>Takes a free slot and advances its generation; false when all are in use.</summary>
    public bool TryAllocate(out int index, out uint tag)
    {
        if (_freeCount == 0)
        {
            index = -1;
            tag = 0;
            return false;
        }
        index = _free[--_freeCount];
        _generation[index] = (_generation[index] + 1) & GenerationMask;
        _live[index] = true;
        tag = TagOf(index);
        return true;
    }

    public bool IsLive(int index) => _live[index];

    public uint TagOf(int index) => UserlandBit | _generation[index] << IndexBits | (uint)index;

    /// <summary>The live slot a reply's tag names; false for foreign, control, stale or malformed tags.</summary>
    public bool TryResolve(uint tag, out int index)
    {
        index = (int)(tag & IndexMask);
        if ((tag & (UserlandBit | ControlBit)) != UserlandBit || (uint)index >= (uint)_live.Length || !_live[index]
            || (tag >> IndexBits & GenerationMask) != _generation[index])
        {
            index = -1;
            return false;
        }
        return true;
    }

    public void Release(int index)
    {
        if (!_live[index])
            throw new InvalidOperationException($"Tag slot {index} is not in use.");
        _live[index] = false;
        _free[_freeCount++] = index;
    }
}
