#!/usr/bin/env bash
# The demo: `xenaoe lab up` builds a whole cluster in network namespaces (2 disk servers, 2 CPU servers, two storage
# switches at MTU 9000, a management and a VM network), boots vm1 from its disk mirrored over both disk servers, then
# live-migrates it to the other CPU server while it keeps counting. The lab stays up; `xenaoe lab down` removes it.
# Usage (root): bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "run as root: the lab creates network namespaces" >&2; exit 1; }

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "installing packages (qemu, busybox, e2fsprogs, vblade, aoetools, ...) if missing"
bash scripts/install-deps.sh
step "building xenaoe (Release) and linking it as /usr/local/bin/xenaoe"
dotnet build src/XenAoe.Cli -c Release -v quiet -nologo | grep -E "error|Warn|Elapsed" || true
ln -sf "$PWD/src/XenAoe.Cli/bin/Release/net10.0/xenaoe" /usr/local/bin/xenaoe

step "xenaoe lab up"
xenaoe lab up
step "xenaoe vm list"
xenaoe vm list
step "xenaoe vm migrate vm1 --to cpu2   (live: the guest keeps writing its counter to its mirrored disk)"
xenaoe vm migrate vm1 --to cpu2
step "xenaoe lab status"
xenaoe lab status
cat <<'TXT'

The lab is up. Try:
  xenaoe console vm1                    # the VM's serial console (Ctrl-] detaches)
  xenaoe vm show vm1                    # state, disks, VNC endpoint, last migration
  xenaoe vm migrate vm1 --to cpu1       # and back
  ip netns exec xa-sw curl http://10.77.1.41/counter   # the VM's counter, from the admin station
  xenaoe lab down                       # removes every namespace, bridge, TAP and process
TXT
