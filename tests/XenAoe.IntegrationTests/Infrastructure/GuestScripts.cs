using System.Globalization;

namespace XenAoe.IntegrationTests.Infrastructure;

/// <summary>Guest scenarios as <see cref="GuestScript"/>s, independent of which AoE target serves the device.</summary>
public static class GuestScripts
{
    /// <summary>
    /// Writes <paramref name="lengthMiB"/> MiB of the pattern at <paramref name="offsetMiB"/> with O_DIRECT, reads it back
    /// with O_DIRECT and compares md5 sums. The pattern starts at MiB index <paramref name="offsetMiB"/>, so the region's
    /// expected bytes are <c>Pattern.CheckFile(path, offsetMiB, lengthMiB, offsetMiB)</c>.
    /// Verdict: <c>XENAOE-RESULT: PASS write-readback offset_mib= length_mib= sectors= write_ms= read_ms= uptime_ms=</c>.
    /// </summary>
    public static GuestScript WriteReadBack(long offsetMiB = 8, int lengthMiB = 16) => new()
    {
        Name = "write-readback",
        Body = Invariant($$"""
            xa_need=$(( ({{offsetMiB}} + {{lengthMiB}}) * 2048 ))
            [ "$(xa_sectors)" -ge $xa_need ] || xa_fail "device has $(xa_sectors) sectors; the test needs $xa_need"
            xa_write_pattern {{offsetMiB}} {{lengthMiB}} {{offsetMiB}} || xa_fail "write of {{lengthMiB}} MiB at {{offsetMiB}} MiB failed"
            xa_w=$XA_LAST_MS
            xa_verify_pattern {{offsetMiB}} {{lengthMiB}} {{offsetMiB}} || xa_fail "read-back of {{lengthMiB}} MiB at {{offsetMiB}} MiB differs from what was written"
            xa_r=$XA_LAST_MS
            xa_dump_debug
            xa_result "PASS write-readback offset_mib={{offsetMiB}} length_mib={{lengthMiB}} sectors=$(xa_sectors) write_ms=$xa_w read_ms=$xa_r uptime_ms=$(xa_ms)"
            """),
    };

    /// <summary>
    /// Writes chunks in a loop until a write has stalled (the target went away) and <see cref="GuestWriteLoop.WritesAfterStall"/>
    /// more have completed, then reads every slot back; see <see cref="GuestWriteLoop"/> for the lines it prints.
    /// </summary>
    public static GuestScript WriteLoop(GuestWriteLoop loop) => new()
    {
        Name = "write-loop",
        GuestTimeout = loop.MaxDuration + TimeSpan.FromMinutes(1),
        Body = Invariant($$"""
            xa_off={{loop.OffsetMiB}}; xa_chunk={{loop.ChunkMiB}}; xa_slots={{loop.Slots}}; xa_first={{loop.FirstPatternMiB}}
            xa_stall_ms={{(long)loop.StallThreshold.TotalMilliseconds}}; xa_after_needed={{loop.WritesAfterStall}}; xa_max_ms={{(long)loop.MaxDuration.TotalMilliseconds}}
            xa_need=$(( (xa_off + xa_chunk * xa_slots) * 2048 ))
            [ "$(xa_sectors)" -ge $xa_need ] || xa_fail "device has $(xa_sectors) sectors; the loop needs $xa_need"
            i=0; xa_stalls=0; xa_after=0; xa_longest=0; xa_start=$(xa_ms)
            while :; do
              xa_slot=$(( i % xa_slots ))
              xa_write_pattern $(( xa_off + xa_slot * xa_chunk )) $xa_chunk $(( xa_first + i * xa_chunk )) || xa_fail "write i=$i failed"
              xa_progress "write i=$i slot=$xa_slot ms=$XA_LAST_MS uptime_ms=$(xa_ms)"
              [ $XA_LAST_MS -le $xa_longest ] || xa_longest=$XA_LAST_MS
              if [ $XA_LAST_MS -ge $xa_stall_ms ]; then
                xa_stalls=$(( xa_stalls + 1 ))
                xa_info "stall i=$i ms=$XA_LAST_MS"
              elif [ $xa_stalls -gt 0 ]; then
                xa_after=$(( xa_after + 1 ))
              fi
              i=$(( i + 1 ))
              [ $xa_after -lt $xa_after_needed ] || break
              [ $(( $(xa_ms) - xa_start )) -lt $xa_max_ms ] || xa_fail "no stalled write followed by $xa_after_needed good ones within ${xa_max_ms}ms (iterations=$i stalls=$xa_stalls)"
            done
            xa_n=$i; s=0
            while [ $s -lt $xa_slots ] && [ $s -lt $xa_n ]; do
              j=$(( s + xa_slots * ((xa_n - 1 - s) / xa_slots) ))
              xa_verify_pattern $(( xa_off + s * xa_chunk )) $xa_chunk $(( xa_first + j * xa_chunk )) || xa_fail "slot $s differs from its last write i=$j"
              s=$(( s + 1 ))
            done
            xa_dump_debug
            xa_result "PASS write-loop iterations=$xa_n stalls=$xa_stalls longest_ms=$xa_longest uptime_ms=$(xa_ms)"
            """),
    };

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// Parameters of <see cref="GuestScripts.WriteLoop"/>: iteration <c>i</c> writes <see cref="ChunkMiB"/> MiB of pattern
/// MiB <c>FirstPatternMiB + i * ChunkMiB</c>.. into slot <c>i mod Slots</c> (at <c>OffsetMiB + slot * ChunkMiB</c>).
/// </summary>
/// <remarks>
/// Lines: <c>XENAOE-PROGRESS: write i= slot= ms= uptime_ms=</c> after each write, <c>XENAOE-INFO: stall i= ms=</c> for a
/// write that took at least <see cref="StallThreshold"/>, and <c>XENAOE-RESULT: PASS write-loop iterations= stalls= longest_ms= uptime_ms=</c>.
/// </remarks>
public sealed record GuestWriteLoop
{
    public long OffsetMiB { get; init; } = 4;

    public int ChunkMiB { get; init; } = 4;

    public int Slots { get; init; } = 8;

    public long FirstPatternMiB { get; init; } = 1 << 20;

    /// <summary>A write at least this slow counts as the outage (writes take tens of ms under TCG otherwise).</summary>
    public TimeSpan StallThreshold { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Good writes needed after the first stall before the loop stops.</summary>
    public int WritesAfterStall { get; init; } = 5;

    /// <summary>The loop fails if it has not seen a stall and recovered within this time.</summary>
    public TimeSpan MaxDuration { get; init; } = TimeSpan.FromSeconds(150);

    public long RegionMiB => (long)ChunkMiB * Slots;

    /// <summary>What each slot holds after <paramref name="iterations"/> writes: (offset, first pattern MiB) of each slot written.</summary>
    public IEnumerable<(long OffsetMiB, long FirstPatternMiB)> FinalContents(long iterations)
    {
        for (var slot = 0; slot < Slots && slot < iterations; slot++)
        {
            var last = slot + Slots * ((iterations - 1 - slot) / Slots);
            yield return (OffsetMiB + (long)slot * ChunkMiB, FirstPatternMiB + last * ChunkMiB);
        }
    }
}
