#!/usr/bin/env bash
# Failover figures (issue 10): from kill -9 of every process of a CPU server (host daemon and QEMU) to its VM answering HTTP
# again on the other CPU server, with the breakdown read from the failover job: detect (kill to the job's creation: heartbeats
# unanswered for the dead time), schedule (job created to its host chosen), fence (reservations at both disk servers),
# start (mirror assembled, QEMU started), boot (QEMU started to the guest answering HTTP). Then, with --store etcd, from kill -9
# of the leading controller to the standby leading.
# Usage (root): bash benchmarks/lab/failover.sh [runs]   (default 5). Each run uses a fresh lab of its own, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
dotnet build src/XenAoe.Cli -c Release -v quiet -nologo >/dev/null
xenaoe() { dotnet src/XenAoe.Cli/bin/Release/net10.0/xenaoe.dll "$@"; }
now() { date +%s.%N; }

state=
results=$(mktemp /tmp/xenaoe-failover-results.XXXXXX)
cleanup() { [[ -n $state ]] && { xenaoe lab down --state-dir "$state" >/dev/null || true; rm -rf "$state"; }; }
trap 'cleanup; rm -f "$results"' EXIT

for run in $(seq "$runs"); do
  state=$(mktemp -d /tmp/xenaoe-failover.XXXXXX); prefix=xg$((RANDOM % 100000)); export XENAOE_LAB=$state
  xenaoe lab up --prefix "$prefix" --state-dir "$state" >/dev/null
  sleep 2
  killed=$(now)
  kill -9 $(ip netns pids "$prefix-cpu1")
  # cpu1's QEMU is gone, so an answer now comes from the restarted guest.
  until ip netns exec "$prefix-sw" curl -sf --connect-timeout 0.3 -m 1 http://10.77.1.41/counter >/dev/null; do sleep 0.05; done
  answered=$(now)
  xenaoe job list --json | python3 -c '
import json, sys
from datetime import datetime
killed, answered = float(sys.argv[1]), float(sys.argv[2])
job = [j for j in json.load(sys.stdin) if j["kind"] == "vm-failover"][-1]
t = lambda s: datetime.fromisoformat(s).timestamp()
step = {s["name"]: s for s in job["steps"]}
row = {"total": answered - killed, "detect": t(job["createdAt"]) - killed,
       "schedule": t(step["place"]["finishedAt"]) - t(job["createdAt"]),
       "fence": t(step["fence"]["finishedAt"]) - t(step["fence"]["startedAt"]),
       "start": t(step["start"]["finishedAt"]) - t(step["start"]["startedAt"]),
       "boot": answered - t(step["start"]["finishedAt"]), "state": job["state"]}
print(json.dumps(row))' "$killed" "$answered" | tee -a "$results"
  cleanup; state=
done

python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"runs: {len(rows)}, jobs succeeded: {sum(r['state'] == 'Succeeded' for r in rows)}")
print("| figure (s) | median | min | max |")
print("|---|---|---|---|")
for key in ["total", "detect", "schedule", "fence", "start", "boot"]:
    v = [r[key] for r in rows]
    print(f"| {key} | {statistics.median(v):.2f} | {min(v):.2f} | {max(v):.2f} |")
PY

state=$(mktemp -d /tmp/xenaoe-failover.XXXXXX); prefix=xg$((RANDOM % 100000)); export XENAOE_LAB=$state
xenaoe lab up --prefix "$prefix" --state-dir "$state" --store etcd >/dev/null
leader=$(xenaoe controller status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["leaderName"])')
pid=$(xenaoe lab status --state-dir "$state" --json | python3 -c "import json,sys; print(next(p['pid'] for p in json.load(sys.stdin)['processes'] if p['name']=='$leader'))")
start=$(now)
kill -9 "$pid"
until xenaoe controller status --json 2>/dev/null | python3 -c "import json,sys; l=json.load(sys.stdin)['leaderName']; sys.exit(0 if l and l != '$leader' else 1)"; do sleep 0.1; done
echo "controller takeover (etcd, lease 5 s), kill -9 of the leader to the standby leading: $(echo "$(now) - $start" | bc) s"
