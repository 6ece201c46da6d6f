#!/usr/bin/env bash
# Builds dist/xenaoe_VERSION_amd64.deb: the CLI and daemons as one self-contained single-file executable (no .NET runtime
# needed: Debian 12 packages none; figures in docs/PERFORMANCE.md), the systemd units, the commented /etc/xenaoe/*.conf,
# and maintainer scripts that create the xenaoe user and never delete pools or state. Checks it with lintian.
# Usage: bash scripts/package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
base=0.1.0
# Increases with every commit, so each build upgrades the one before.
version="$base+git$(git rev-list --count HEAD).$(git rev-parse --short=8 HEAD)"
out=dist
stage=$(mktemp -d /tmp/xenaoe-package.XXXXXX)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
publish=$stage/publish

dotnet publish src/XenAoe.Cli -c Release -r linux-x64 --self-contained -p:PublishSingleFile=true -p:DebugType=none \
  -p:InformationalVersion="$version" -p:IncludeSourceRevisionInInformationalVersion=false -o "$publish" -nologo -v quiet

install -d "$root/usr/lib/xenaoe" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/xenaoe" "$root/usr/share/doc/xenaoe" "$root/DEBIAN"
install -m 0755 "$publish/xenaoe" "$root/usr/lib/xenaoe/xenaoe"
for lib in "$publish"/*.so; do
  [[ -e $lib ]] && install -m 0644 "$lib" "$root/usr/lib/xenaoe/" && strip --strip-unneeded "$root/usr/lib/xenaoe/${lib##*/}"
done
ln -s ../lib/xenaoe/xenaoe "$root/usr/bin/xenaoe"
install -m 0644 packaging/systemd/*.service "$root/lib/systemd/system/"
for role in disk host controller; do
  "$publish/xenaoe" config example "$role" >"$root/etc/xenaoe/$role.conf"
  chmod 0644 "$root/etc/xenaoe/$role.conf"
  echo "/etc/xenaoe/$role.conf" >>"$root/DEBIAN/conffiles"
done
install -m 0644 packaging/debian/copyright "$root/usr/share/doc/xenaoe/copyright"
install -m 0644 docs/CONFIGURATION.md "$root/usr/share/doc/xenaoe/CONFIGURATION.md"
{
  echo "xenaoe ($version) unstable; urgency=medium"
  echo
  echo "  * Build of commit $(git rev-parse --short=8 HEAD)."
  echo
  echo " -- XenAoE developers <xenaoe@example.org>  $(date -R -d "@$(git log -1 --format=%ct)")"
} | gzip -9n >"$root/usr/share/doc/xenaoe/changelog.gz"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: xenaoe
Version: $version
Architecture: amd64
Maintainer: XenAoE developers <xenaoe@example.org>
Installed-Size: $size
Depends: adduser, libc6, libgcc-s1, libstdc++6, zlib1g, iproute2
Recommends: qemu-system-x86, qemu-utils
Suggests: xen-utils, e2fsprogs, aoetools, etcd-server
Section: admin
Priority: optional
Homepage: https://github.com/xenaoe/xenaoe
Description: private cloud with VM disks mirrored over ATA over Ethernet
 XenAoE turns commodity machines into a private cloud: disk servers export
 volumes over ATA over Ethernet, CPU servers run QEMU (or Xen) VMs whose disks
 are mirrored across two disk servers, and a controller restarts VMs elsewhere
 when a CPU server dies. One package for every role: xenaoe-disk.service,
 xenaoe-host.service and xenaoe-controller.service, configured in
 /etc/xenaoe/ROLE.conf.
CONTROL
mkdir -p "$out"
deb="$out/xenaoe_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb ($(du -k "$deb" | cut -f1) KiB; installed $size KiB)"
if command -v lintian >/dev/null; then
  lintian --fail-on error --suppress-tags embedded-library,statically-linked-binary "$deb"
fi
