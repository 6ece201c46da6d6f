#!/usr/bin/env bash
# Failover figures (issue 5): from kill -9 of every process of a CPU server (host daemon and QEMU) to its VM answering HTTP
# again on the other CPU server (detection, fencing at both disk servers, restart, guest boot); and, with --store etcd, from
# kill -9 of the leading controller to the standby leading.
# Usage (root): bash benchmarks/lab/failover.sh [runs]   (default 3). Each run uses a fresh lab of its own, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
dotnet build src/XenAoe.Cli -c Release -v quiet -nologo >/dev/null
xenaoe() { dotnet src/XenAoe.Cli/bin/Release/net10.0/xenaoe.dll "$@"; }
now() { date +%s.%N; }

state=
cleanup() { [[ -n $state ]] && { xenaoe lab down --state-dir "$state" >/dev/null || true; rm -rf "$state"; }; }
trap cleanup EXIT

for run in $(seq "$runs"); do
  state=$(mktemp -d /tmp/xenaoe-failover.XXXXXX); prefix=xg$((RANDOM % 100000)); export XENAOE_LAB=$state
  xenaoe lab up --prefix "$prefix" --state-dir "$state" >/dev/null
  sleep 2
  start=$(now)
  kill -9 $(ip netns pids "$prefix-cpu1")
  until xenaoe vm list --json | grep -q '"host":"cpu2"' && ip netns exec "$prefix-sw" curl -sf -m 1 http://10.77.1.41/counter >/dev/null; do sleep 0.1; done
  echo "run $run: CPU server failover, kill -9 to HTTP answering: $(echo "$(now) - $start" | bc) s"
  cleanup; state=
done

state=$(mktemp -d /tmp/xenaoe-failover.XXXXXX); prefix=xg$((RANDOM % 100000)); export XENAOE_LAB=$state
xenaoe lab up --prefix "$prefix" --state-dir "$state" --store etcd >/dev/null
leader=$(xenaoe controller status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["leaderName"])')
pid=$(xenaoe lab status --state-dir "$state" --json | python3 -c "import json,sys; print(next(p['pid'] for p in json.load(sys.stdin)['processes'] if p['name']=='$leader'))")
start=$(now)
kill -9 "$pid"
until xenaoe controller status --json 2>/dev/null | python3 -c "import json,sys; l=json.load(sys.stdin)['leaderName']; sys.exit(0 if l and l != '$leader' else 1)"; do sleep 0.1; done
echo "controller takeover (etcd, lease 5 s), kill -9 of the leader to the standby leading: $(echo "$(now) - $start" | bc) s"
