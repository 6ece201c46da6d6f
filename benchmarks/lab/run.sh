#!/usr/bin/env bash
# Lab figures (issue 4): time from `xenaoe lab up` to a booted VM; live migrations back and forth with the total time, the
# downtime QEMU reports and our disk hand-over; HTTP requests to the VM lost meanwhile (one every 50 ms from the admin station).
# Usage (root): bash benchmarks/lab/run.sh [migrations]   (default 10). Uses its own lab (prefix, state dir), removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
migrations=${1:-10}
dotnet build src/XenAoe.Cli -c Release -v quiet -nologo >/dev/null
xenaoe() { dotnet src/XenAoe.Cli/bin/Release/net10.0/xenaoe.dll "$@"; }

state=$(mktemp -d /tmp/xenaoe-lab-bench.XXXXXX)
prefix=xb$((RANDOM % 100000))
export XENAOE_LAB=$state
poller=
cleanup() {
  [[ -n $poller ]] && kill "$poller" 2>/dev/null || true
  xenaoe lab down --state-dir "$state" >/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT

start=$(date +%s.%N)
xenaoe lab up --prefix "$prefix" --state-dir "$state" | tee "$state/up.log"
up_seconds=$(echo "$(date +%s.%N) - $start" | bc)

( while :; do
    if ip netns exec "$prefix-sw" curl -sf -m 10 http://10.77.1.41/counter >/dev/null 2>&1; then echo ok; else echo fail; fi
    sleep 0.05
  done ) > "$state/http.log" &
poller=$!
sleep 2
for i in $(seq "$migrations"); do
  to=$((i % 2 == 1 ? 2 : 1))
  xenaoe vm migrate vm1 --to "cpu$to" --json >> "$state/migrations.jsonl"
  sleep 1
done
kill "$poller"; poller=

python3 - "$state" "$up_seconds" <<'PY'
import json, re, statistics, sys
state, up = sys.argv[1], float(sys.argv[2])
boot = re.search(r"vm1 answers at .* ([0-9.]+) s after start", open(f"{state}/up.log").read())
# Each line is the migration job as `xenaoe vm migrate --json` prints it; the figures are the result of its "activate on cpuN"
# step (the transfer's total and downtime as QEMU reported them, and the disk hand-over).
jobs = [json.loads(l) for l in open(f"{state}/migrations.jsonl")]
def figures(job):
    step = next((s for s in job["steps"] if s["name"].startswith("activate on ") and s.get("result")), None)
    return {k: float(v) for k, v in step["result"].items() if k.endswith("Ms") and v is not None} if step else {}
reports = [{**figures(j), "state": j["state"]} for j in jobs]
http = open(f"{state}/http.log").read().split()
def row(name, key):
    values = [r[key] for r in reports if r.get(key)]
    return f"| {name} | {statistics.median(values):.0f} | {min(values):.0f} | {max(values):.0f} |"
print()
print(f"lab up to vm1 answering HTTP: {up:.1f} s (vm1: {boot.group(1) if boot else '?'} s from QEMU start)")
print(f"migrations: {len(reports)}, completed: {sum(r['state'] == 'Succeeded' for r in reports)}")
print("| figure (ms) | median | min | max |")
print("|---|---|---|---|")
print(row("total time (QEMU)", "totalMs"))
print(row("downtime (QEMU)", "downtimeMs"))
print(row("disk hand-over (ours)", "handoverMs"))
print(f"HTTP requests during the migrations: {len(http)}, lost: {http.count('fail')}")
PY
