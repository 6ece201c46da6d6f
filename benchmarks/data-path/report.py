#!/usr/bin/env python3
"""Helpers of run.sh: read one fio JSON result, and turn results/latest.csv into markdown tables.

  report.py extract JSON RW      -> "mbps iops lat_mean_us p50_us p99_us p999_us fio_cpu_pct errors" (or nothing)
  report.py maxlat JSON RW       -> the longest request's total latency in ms (or nothing)
  report.py tables CSV           -> the markdown tables of docs/PERFORMANCE.md ("Data path" section)
"""
import csv
import json
import sys

SETUPS = ["a", "b", "c", "d"]


def load_job(path):
    """fio's one job from its JSON output, or None if the file is missing or not fio's JSON."""
    try:
        with open(path) as f:
            text = f.read()
        # fio's nbd engine prints "fio: connected to NBD server" on stdout; --output keeps the file clean,
        # but be tolerant of anything before the JSON object.
        return json.loads(text[text.index("{"):])["jobs"][0]
    except (OSError, ValueError, KeyError, IndexError):
        return None


def extract(path, rw):
    job = load_job(path)
    if job is None:
        return ""
    d = job["read"] if "read" in rw else job["write"]
    # Total latency (submission to completion, needs --lat_percentiles=1): with the nbd engine the
    # submit call itself sends the request (and for writes its data), so fio's clat alone can miss
    # most of it (a 4 KiB write at depth 1 to a local nbdkit: slat 21 us, clat 5 us).
    lat = d.get("lat_ns", {}) if d.get("lat_ns", {}).get("percentile") else d.get("clat_ns", {})
    pct = lat.get("percentile", {})

    def us(key):
        return "%.1f" % (pct[key] / 1000) if key in pct else ""

    runtime_s = job.get("job_runtime", d.get("runtime", 0)) / 1000
    fio_cpu = (job.get("usr_cpu", 0) + job.get("sys_cpu", 0)) if runtime_s > 0 else 0
    return " ".join([
        "%.1f" % (d["bw_bytes"] / 1e6),
        "%.0f" % d["iops"],
        "%.1f" % (lat.get("mean", 0) / 1000),
        us("50.000000") or "-", us("99.000000") or "-", us("99.900000") or "-",
        "%.0f" % fio_cpu,
        str(job.get("error", 0) or 0),
    ])


def maxlat(path, rw):
    job = load_job(path)
    try:
        d = job["read" if "read" in rw else "write"]
        return "%.0f" % ((d.get("lat_ns") or d["clat_ns"])["max"] / 1e6)
    except (TypeError, KeyError):
        return ""


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def tables(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    cases, by = [], {}
    fill, check, resync, frames, reasons = {}, {}, {}, {}, {}
    # Rows outside the case matrix, by setup; the frame-path rows, by their name.
    special = {"fill": fill, "check": check, "resync": resync}
    for r in rows:
        s, c = r["setup"], r["case"]
        if c in special:
            special[c][s] = r
            continue
        if s == "frames":
            frames[c] = r
            continue
        if c not in by:
            by[c] = {}
            cases.append(c)
        by[c][s] = r
        if r["status"].startswith("not run"):
            reasons[s] = r["status"]
    present = [s for s in SETUPS if any(s in by[c] for c in cases)]

    def cell_tp(r):
        if r is None:
            return " | "
        if r["status"].startswith("not run"):
            return "not run | "
        mark = "" if r["status"] == "ok" else " (**%s**)" % r["status"]
        if num(r["iops"]) is None:
            return "%s | " % (r["status"])
        return "%.0f%s | %.0f" % (num(r["mbps"]), mark, num(r["iops"]))

    def ratio(x, y):
        if x is None or y is None:
            return ""
        if x["status"].startswith("not run") or y["status"].startswith("not run"):
            return "not run"
        a, b = num(x["iops"]), num(y["iops"])
        return "%.2f" % (a / b) if a is not None and b else ""

    out = []
    head = ["case"] + ["(%s) MB/s | (%s) IOPS" % (s, s) for s in present]
    ratios = [("b", "a"), ("c", "a"), ("d", "a"), ("d", "b")]
    ratios = [(x, y) for x, y in ratios if x in present and y in present]
    head += ["%s/%s" % (x, y) for x, y in ratios]
    out.append("| " + " | ".join(head) + " |")
    out.append("|---" + "|---:|---:" * len(present) + "|---:" * len(ratios) + "|")
    for c in cases:
        line = [c] + [cell_tp(by[c].get(s)) for s in present]
        line += [ratio(by[c].get(x), by[c].get(y)) for x, y in ratios]
        out.append("| " + " | ".join(line) + " |")
    # Fill (the whole device once, before the cases) and resync: MB/s only.
    line = ["fill: seq write 1 MiB qd8, whole device"]
    for s in present:
        r = fill.get(s)
        if r is None or r["status"].startswith("not run"):
            line.append("not run | ")
        else:
            line.append("%.0f%s | " % (num(r["mbps"]) or 0, "" if r["status"] == "ok" else " (**%s**)" % r["status"]))
    line += [ratio(fill.get(x), fill.get(y)) for x, y in ratios]
    out.append("| " + " | ".join(line) + " |")
    # Resync (c, d): the mirror's copy of the dirty regions after a disk server came back, MB/s; how it went is below the tables.
    line = ["resync of the dirty regions after a disk server returned"]
    for s in present:
        r = resync.get(s)
        if s == "a":
            line.append("n/a (one copy) | ")
        elif s == "b":
            line.append("n/a (quorum has no resync) | ")
        elif r is None:
            line.append("not run | ")
        elif num(r["mbps"]) is None:
            line.append("**%s** | " % r["status"])
        else:
            line.append("%.0f | " % num(r["mbps"]))
    line += [""] * len(ratios)
    out.append("| " + " | ".join(line) + " |")
    out.append("")
    out.append("Ratios are IOPS ratios (equal to the MB/s ratios: same request size).")
    out.append("")
    if frames:
        # What the topology allows AoE writes without NBD or a mirror (run.sh: frame_path).
        b = by.get("seq write 64 KiB qd32", {}).get("b")
        bw = num(b["mbps"]) if b is not None and not b["status"].startswith("not run") else None
        out.append("AoE frame path, same namespaces and switches, no NBD and no mirror: `aoeload` (benchmarks/aoe-target) writes "
                   "8.5 KiB frames sequentially at depth 64 to e1.0 over switch A and to e2.0 over switch B at the same time. "
                   "A mirror writes every byte to both legs, so the smaller leg's MB/s bounds what any mirror over AoE could "
                   "give a VM here.")
        out.append("")
        out.append("| targets | per leg | bound for a mirror, MB/s | bound / (b) seq write 64 KiB qd32 |")
        out.append("|---|---|---:|---:|")
        for name, r in frames.items():
            m = num(r["mbps"])
            out.append("| %s | %s | %s | %s |" % (name, r["status"], "%.0f" % m if m else "", "%.2f" % (m / bw) if m and bw else ""))
        out.append("")

    # Latency and CPU.
    head = ["case"] + ["(%s) p50 / p99 us" % s for s in present] + ["server CPU % (" + " / ".join(present) + ")",
                                                                   "fio CPU % (" + " / ".join(present) + ")",
                                                                   "other CPU % (" + " / ".join(present) + ")"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|---" + "|---:" * (len(present) + 3) + "|")

    def lat(r):
        if r is None or r["status"].startswith("not run") or not r["lat_p50_us"]:
            return "not run" if r is not None and r["status"].startswith("not run") else ""
        return "%.0f / %.0f" % (num(r["lat_p50_us"]) or 0, num(r["lat_p99_us"]) or 0)

    def col(c, key):
        vals = []
        for s in present:
            r = by[c].get(s)
            vals.append(r[key] if r is not None and not r["status"].startswith("not run") and r[key] != "" else "-")
        return " / ".join(vals)

    for c in cases:
        line = [c] + [lat(by[c].get(s)) for s in present] + [col(c, "server_cpu_pct"), col(c, "fio_cpu_pct"), col(c, "other_cpu_pct")]
        out.append("| " + " | ".join(line) + " |")
    out.append("")

    # Data checks and reasons.
    for s in present:
        r = check.get(s)
        if r is not None and not r["status"].startswith("not run"):
            out.append("- Data check (%s): %s" % (s, r["status"]))
    for s in present:
        r = resync.get(s)
        if r is not None:
            out.append("- Resync (%s): %s" % (s, r["status"]))
    for s in present:
        if s in reasons:
            out.append("- (%s) %s" % (s, reasons[s]))
    noisy = [num(r["other_cpu_pct"]) for c in cases for r in by[c].values() if num(r["other_cpu_pct"]) is not None]
    if noisy and max(noisy) > 20:
        out.append("- Other work used up to %.0f%% of a core during some cases: treat those rows as noisy." % max(noisy))
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "extract":
        print(extract(sys.argv[2], sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "maxlat":
        print(maxlat(sys.argv[2], sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == "tables":
        tables(sys.argv[2])
    else:
        sys.exit(__doc__)
