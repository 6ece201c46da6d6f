namespace XenAoe.IntegrationTests.Infrastructure;

/// <summary>
/// The data the guest writes, reproducible on the host: 1 MiB of seeded noise (shipped in the initramfs as
/// <c>/xenaoe/noise</c>), and pattern MiB <c>k</c> is that noise rotated left by <c>(k * 1000003) mod 2^20</c> bytes.
/// </summary>
/// <remarks>
/// Every MiB index gives different bytes (1000003 is odd, so the rotation is a bijection on 2^20 indices) and the noise
/// differs at every byte position, so misplaced, torn or stale sectors all show as mismatches. The guest builds the same
/// bytes with two <c>dd</c> calls per MiB (<c>xa_pattern</c> in <see cref="GuestInit"/>).
/// </remarks>
public sealed class GuestPattern
{
    public const int MiB = 1 << 20;
    private const long RotationStep = 1_000_003;

    private readonly byte[] _noise;

    private GuestPattern(ulong seed, byte[] noise)
    {
        Seed = seed;
        _noise = noise;
    }

    public static GuestPattern Default { get; } = Create(0x58_45_4E_41_4F_45); // "XENAOE"

    public ulong Seed { get; }

    /// <summary>The 1 MiB noise block the guest rotates.</summary>
    public ReadOnlySpan<byte> Noise => _noise;

    public static GuestPattern Create(ulong seed)
    {
        // SplitMix64: a fixed, documented generator, so the bytes never depend on the runtime's Random implementation.
        var noise = new byte[MiB];
        var state = seed;
        for (var i = 0; i < noise.Length; i += 8)
        {
            state += 0x9E37_79B9_7F4A_7C15;
            var z = state;
            z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9;
            z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EB;
            BitConverter.TryWriteBytes(noise.AsSpan(i), z ^ (z >> 31));
        }
        return new GuestPattern(seed, noise);
    }

    /// <summary>Fills <paramref name="destination"/> (a whole number of MiB) with the pattern from MiB index <paramref name="firstMiB"/>.</summary>
    public void Fill(long firstMiB, Span<byte> destination)
    {
        if (destination.Length % MiB != 0)
            throw new ArgumentException("The destination must be a whole number of MiB.", nameof(destination));
        for (var k = 0; k < destination.Length / MiB; k++)
        {
            var block = destination.Slice(k * MiB, MiB);
            var shift = Rotation(firstMiB + k);
            _noise.AsSpan(shift).CopyTo(block);
            _noise.AsSpan(0, shift).CopyTo(block[(MiB - shift)..]);
        }
    }

    /// <summary>
    /// Compares <paramref name="countMiB"/> MiB of <paramref name="path"/> at <paramref name="offsetMiB"/> with the pattern
    /// from MiB index <paramref name="firstMiB"/>; returns <see langword="null"/> when they match, otherwise where and how they differ.
    /// </summary>
    public string? CheckFile(string path, long offsetMiB, int countMiB, long firstMiB)
    {
        var expected = new byte[MiB];
        var actual = new byte[MiB];
        using var file = File.OpenHandle(path);
        var firstBad = -1L;
        var badSectors = 0;
        for (var k = 0; k < countMiB; k++)
        {
            Fill(firstMiB + k, expected);
            var position = (offsetMiB + k) * MiB;
            var read = 0;
            while (read < MiB)
            {
                var n = RandomAccess.Read(file, actual.AsSpan(read), position + read);
                if (n == 0)
                    return $"{path} ends at byte {position + read}, inside the region checked ({offsetMiB} MiB + {countMiB} MiB).";
                read += n;
            }
            for (var sector = 0; sector < MiB; sector += 512)
            {
                if (actual.AsSpan(sector, 512).SequenceEqual(expected.AsSpan(sector, 512)))
                    continue;
                badSectors++;
                if (firstBad < 0)
                    firstBad = position + sector;
            }
        }
        return badSectors == 0
            ? null
            : $"{path}: {badSectors} of {countMiB * 2048} sectors differ from pattern MiB {firstMiB}.. written at {offsetMiB} MiB; first at byte {firstBad} (sector {firstBad / 512}).";
    }

    private static int Rotation(long index) => (int)((ulong)(index * RotationStep) % MiB);
}
