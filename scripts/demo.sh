#!/usr/bin/env bash
# The demo: a disk server in its own network namespace, two storage switches (MTU 9000), a client host,
# and real AoE clients (aoetools) discovering, identifying and configuring our targets over both paths.
# Usage (root): bash scripts/demo.sh [--keep]   --keep leaves the lab running and prints how to remove it.
set -euo pipefail
cd "$(dirname "$0")/.."
keep=${1:-}
[[ $(id -u) == 0 ]] || { echo "run as root: the demo creates network namespaces" >&2; exit 1; }

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "installing packages (vblade, aoetools, qemu, ...) if missing"
bash scripts/install-deps.sh
step "building xenaoe (Release)"
dotnet build src/XenAoe.Cli -c Release -v quiet -nologo | grep -E "error|Warn|Elapsed" || true
xenaoe() { dotnet src/XenAoe.Cli/bin/Release/net10.0/xenaoe.dll "$@"; }

p=xdemo$$
pool=$(mktemp -d /tmp/xenaoe-demo-pool.XXXXXX)
server_pid=
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  for ns in "$p-disk1" "$p-cpu1" "$p-sw"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$pool"
}
if [[ $keep != --keep ]]; then trap cleanup EXIT; fi

step "building the network: switches A and B (bridges, MTU 9000), disk server disk1 and client cpu1 with a NIC on each"
ip netns add "$p-sw"
for sw in 0 1; do
  ip -n "$p-sw" link add "br$sw" mtu 9000 type bridge stp_state 0 forward_delay 0
  ip -n "$p-sw" link set "br$sw" up
done
for host in disk1 cpu1; do
  ip netns add "$p-$host"
  ip -n "$p-$host" link set lo up
  for sw in 0 1; do
    ip -n "$p-sw" link add "$host-$sw" mtu 9000 type veth peer name "eth$sw" mtu 9000 netns "$p-$host"
    ip -n "$p-sw" link set "$host-$sw" master "br$sw" up
    ip -n "$p-$host" link set "eth$sw" up
  done
done

step "creating volumes in pool $pool"
xenaoe disk volume create web1 --pool "$pool" --address e1.0 --size 256M
xenaoe disk volume create db1 --pool "$pool" --address e1.1 --size 1G
step "starting the disk server in namespace $p-disk1 on eth0 and eth1"
ip netns exec "$p-disk1" dotnet src/XenAoe.Cli/bin/Release/net10.0/xenaoe.dll disk serve --pool "$pool" -i eth0 -i eth1 > "$pool/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do grep -q "disk server ready" "$pool/server.log" 2>/dev/null && break; sleep 0.2; done
cat "$pool/server.log"

step "aoe-sancheck on cpu1: every target, every path, the payload per frame"
ip netns exec "$p-cpu1" aoe-sancheck | sed -n '/DEVICE SUMMARY/,$p'
step "aoeping -i: IDENTIFY DEVICE of e1.1 (words 100-103 hold the LBA48 size)"
ip netns exec "$p-cpu1" aoeping -i 1 1 eth1 | head -4
step "aoecfg: claim e1.0 with a config string, then read it back"
ip netns exec "$p-cpu1" aoecfg -c set -s "owner=cpu1" 1 0 eth0
ip netns exec "$p-cpu1" aoecfg 1 0 eth1
step "fencing: reserve e1.0 for another host (02:00:00:00:00:99); reads and writes from any other MAC now get AoE error 6"
xenaoe disk volume reserve web1 --pool "$pool" --mac 02:00:00:00:00:99
xenaoe disk volume list --pool "$pool"
step "what the target counted"
xenaoe disk counters --pool "$pool" | awk '$2 != 0'

if [[ $keep == --keep ]]; then
  echo
  echo "lab left running: namespaces $p-sw $p-disk1 $p-cpu1, server pid $server_pid, pool $pool"
  echo "remove with: kill $server_pid; ip netns del $p-sw; ip netns del $p-disk1; ip netns del $p-cpu1; rm -rf $pool"
fi
