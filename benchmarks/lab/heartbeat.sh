#!/usr/bin/env bash
# What a heartbeat costs (issue 10): the controller's status request to a CPU server (GET v1/host), timed from the admin
# station every 0.2 s at each CPU server while the lab is busy: a live migration back and forth and a guest booting on the
# other server (kill -9 of cpu1, failover). The heartbeat timeout and the dead time are chosen from this distribution.
# Usage (root): bash benchmarks/lab/heartbeat.sh [migrations]   (default 4). Uses its own lab, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
migrations=${1:-4}
dotnet build src/XenAoe.Cli -c Release -v quiet -nologo >/dev/null
xenaoe() { dotnet src/XenAoe.Cli/bin/Release/net10.0/xenaoe.dll "$@"; }

state=$(mktemp -d /tmp/xenaoe-heartbeat.XXXXXX)
prefix=xh$((RANDOM % 100000))
export XENAOE_LAB=$state
pollers=()
cleanup() {
  for p in "${pollers[@]}"; do kill "$p" 2>/dev/null || true; done
  xenaoe lab down --state-dir "$state" >/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT

xenaoe lab up --prefix "$prefix" --state-dir "$state" >/dev/null
token=$(cat "$state/controller/token")
for cpu in 1 2; do
  ( while :; do
      ip netns exec "$prefix-sw" curl -s -o /dev/null -m 5 -w '%{http_code} %{time_total}\n' -H "Authorization: Bearer $token" \
        "http://10.77.0.2$cpu:7300/v1/host" || echo "000 5"
      sleep 0.2
    done ) > "$state/cpu$cpu.log" &
  pollers+=($!)
done
for i in $(seq "$migrations"); do
  xenaoe vm migrate vm1 --to "cpu$((i % 2 == 1 ? 2 : 1))" >/dev/null
done
# A failover: cpu2 boots the guest while its host daemon keeps answering heartbeats.
kill -9 $(ip netns pids "$prefix-cpu1")
until ip netns exec "$prefix-sw" curl -sf -m 1 http://10.77.1.41/counter >/dev/null; do sleep 0.2; done
sleep 2
for p in "${pollers[@]}"; do kill "$p" 2>/dev/null || true; done; pollers=()

python3 - "$state/cpu2.log" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
ok = sorted(float(t) * 1000 for code, t in rows if code == "200")
q = lambda p: ok[min(len(ok) - 1, int(p * len(ok)))]
print(f"cpu2 (migrations in and out, then a guest booting): {len(rows)} requests, {len(rows) - len(ok)} unanswered")
print(f"| p50 | p90 | p99 | max (ms) |\n|---|---|---|---|\n| {q(0.5):.1f} | {q(0.9):.1f} | {q(0.99):.1f} | {ok[-1]:.1f} |")
PY
