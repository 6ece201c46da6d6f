#!/usr/bin/env bash
# Installs the Debian packages XenAoE's lab, tests and benchmarks use. Idempotent; needs root.
set -euo pipefail

packages=(
  iproute2 kmod cpio gcc make           # namespaces, initramfs packing, the C load generator
  lintian mmdebstrap                    # scripts/package.sh checks the .deb; package tests install it into a throwaway root
  iputils-ping                          # the lab's jumbo-frame check (ping -M do)
  curl                                  # the demo and lab benchmark read the VM counter over HTTP
  vblade aoetools                       # reference AoE target and userland clients
  qemu-system-x86 qemu-utils busybox-static  # guests running the Linux aoe driver
  e2fsprogs                             # the VM guest's root image (mke2fs -d), read back by tests (debugfs)
  fio nbdkit libnbd-bin                 # NBD clients and reference server
  etcd-server etcd-client               # the controller's replicated state store (3-member cluster in tests)
  chromium                              # headless browser for the dashboard test (never a tool-downloaded browser)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
