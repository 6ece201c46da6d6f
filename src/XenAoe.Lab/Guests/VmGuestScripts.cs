namespace XenAoe.Lab.Guests;

/// <summary>
/// The shell scripts of the VM guest (busybox <c>sh</c>): the initrd's <c>/init</c>, and on the root disk <c>/sbin/init</c>,
/// the shutdown action, the power-button handler and the status CGI. Part of the image's content hash.
/// </summary>
internal static class VmGuestScripts
{
    /// <summary>Kernel modules the initrd loads, in this order (each after its dependencies, which are added).</summary>
    /// <remarks>
    /// crc32c_generic before ext4: ext4 and jbd2 checksum metadata through the crypto API's "crc32c", which the kernel would
    /// otherwise ask modprobe for, and TCG's default CPU has no SSE4.2 for crc32c-intel. button and evdev turn QEMU's ACPI
    /// power button (<c>system_powerdown</c>) into a KEY_POWER input event, which busybox acpid reads.
    /// </remarks>
    public static readonly string[] Modules =
    [
        "virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci", "virtio_blk",
        "failover", "net_failover", "virtio_net", "crc32c_generic", "ext4", "button", "evdev",
    ];

    /// <summary>The initrd's <c>/init</c>; <c>@MODULES@</c> becomes the module names in load order.</summary>
    public const string InitrdInit = """
        #!/bin/busybox sh
        # XenAoE VM guest, stage 1 (initrd): load the disk, NIC and ext4 drivers, mount the root disk, switch to it.
        /bin/busybox mkdir -p /proc /sys /dev /newroot /sbin /usr/bin /usr/sbin
        /bin/busybox --install -s
        export PATH=/bin:/sbin:/usr/bin:/usr/sbin
        mount -t proc proc /proc
        mount -t sysfs sysfs /sys
        mount -t devtmpfs devtmpfs /dev
        exec </dev/console >/dev/console 2>&1

        fail() {
          echo "XENAOE-GUEST INITRD-ERROR $*"
          poweroff -f
        }

        root=/dev/vda
        timeout=30
        for a in $(cat /proc/cmdline); do
          case "$a" in
            root=*) root=${a#root=} ;;
            xenaoe.roottimeout=*) timeout=${a#*=} ;;
          esac
        done

        for m in @MODULES@; do
          insmod /modules/$m.ko || fail "insmod $m failed"
        done

        n=0
        until [ -b "$root" ]; do
          [ $n -lt $(( timeout * 10 )) ] || fail "root disk $root did not appear within ${timeout}s (block devices: $(ls /sys/block | tr '\n' ' '))"
          usleep 100000
          n=$(( n + 1 ))
        done
        mount -t ext4 -o rw "$root" /newroot || fail "cannot mount $root as ext4"
        [ -x /newroot/sbin/init ] || fail "$root has no executable /sbin/init"

        umount /proc /sys
        mount -o move /dev /newroot/dev || fail "cannot move /dev into the root disk"
        exec switch_root /newroot /sbin/init
        fail "switch_root failed"
        """;

    /// <summary>
    /// <c>/sbin/init</c> on the root disk: brings the guest up (mounts, hostname, eth0, boot counter, counter loop, httpd,
    /// acpid), prints the READY line, then hands PID 1 to busybox init, which respawns the serial shell and runs the
    /// shutdown action on reboot and poweroff.
    /// </summary>
    public const string RootInit = """
        #!/bin/sh
        # XenAoE VM guest, stage 2 (PID 1 on the root disk).
        export PATH=/bin:/sbin:/usr/bin:/usr/sbin
        mount -t proc proc /proc
        mount -t sysfs sysfs /sys
        [ -e /dev/console ] || mount -t devtmpfs devtmpfs /dev
        mount -t tmpfs -o mode=1777 tmpfs /tmp
        mount -t tmpfs -o mode=0755 tmpfs /run
        exec </dev/console >/dev/console 2>&1
        . /etc/xenaoe/lib.sh

        ip=
        gw=
        host=xenaoe-vm
        for a in $(cat /proc/cmdline); do
          case "$a" in
            xenaoe.ip=*) ip=${a#*=} ;;
            xenaoe.gw=*) gw=${a#*=} ;;
            xenaoe.hostname=*) host=${a#*=} ;;
          esac
        done
        hostname "$host"

        ip link set lo up
        n=0
        while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 100 ]; do usleep 100000; n=$(( n + 1 )); done
        if [ -e /sys/class/net/eth0 ]; then
          ip link set eth0 mtu 1500 up
          [ -z "$ip" ] || ip addr add "$ip" dev eth0 || echo "XENAOE-GUEST NET-ERROR cannot add $ip to eth0"
          [ -z "$gw" ] || ip route add default via "$gw" || echo "XENAOE-GUEST NET-ERROR cannot add default route via $gw"
        else
          echo "XENAOE-GUEST NET-ERROR no eth0 within 10s"
        fi

        mkdir -p "$XA_STATE" "$XA_RUN/www/cgi-bin"
        echo "$host" > "$XA_RUN/hostname"
        echo 0 > "$XA_RUN/ioerrors"
        boot=$(( $(xa_load "$XA_STATE/boot") + 1 ))
        xa_store "$boot" "$XA_STATE/boot" || xa_io_error "boot=$boot"
        echo "$boot" > "$XA_RUN/boot"
        counter=$(xa_load "$XA_STATE/counter")
        xa_publish "$counter"

        xa_counter_loop "$counter" </dev/null >/dev/console 2>&1 &
        echo $! > "$XA_RUN/counter.pid"
        ln -s /usr/lib/xenaoe/status.cgi "$XA_RUN/www/cgi-bin/status"
        httpd -p 80 -h "$XA_RUN/www" || echo "XENAOE-GUEST HTTPD-ERROR httpd did not start"
        acpid -c /etc/acpi -l "$XA_RUN/acpid.log" -p "$XA_RUN/acpid.pid" || echo "XENAOE-GUEST ACPID-ERROR acpid did not start"

        echo "XENAOE-GUEST READY host=$host ip=${ip:-none} boot=$boot counter=$counter uptime=$(cut -d' ' -f1 /proc/uptime)"
        exec /bin/busybox init
        """;

    /// <summary><c>/etc/xenaoe/lib.sh</c>: the state paths and the durable-counter helpers, shared by init and the shutdown action.</summary>
    public const string Library = """
        # XenAoE VM guest: state on the root disk and its published copy in /run.
        XA_STATE=/var/lib/xenaoe
        XA_RUN=/run/xenaoe

        # xa_load FILE: the number in FILE, 0 when it is missing or empty.
        xa_load() {
          local v=0
          [ -r "$1" ] && read v < "$1"
          echo $(( ${v:-0} + 0 ))
        }

        # xa_store N FILE: N as a fixed-width 13-byte record written in place and fsynced. In place (notrunc) and inside one
        # sector, so the file always holds the old or the new value on the disk, never nothing.
        xa_store() {
          printf '%12d\n' "$1" | dd of="$2" bs=13 count=1 conv=notrunc,fsync 2>"$XA_RUN/dd.err"
        }

        # xa_publish N: what GET /counter serves; rename makes the update atomic for readers.
        xa_publish() {
          echo "$1" > "$XA_RUN/www/.counter" && mv "$XA_RUN/www/.counter" "$XA_RUN/www/counter"
        }

        # xa_io_error WHAT: one console line per failed disk write; counts it for /cgi-bin/status.
        xa_io_error() {
          local e=$(( $(xa_load "$XA_RUN/ioerrors") + 1 ))
          echo "$e" > "$XA_RUN/ioerrors"
          echo "XENAOE-GUEST IO-ERROR $1 errors=$e $(head -n 1 "$XA_RUN/dd.err" 2>/dev/null)" > /dev/console
        }

        # xa_counter_loop N: every 200 ms stores N+1 durably, then publishes it; a failed write is retried on the next tick,
        # so the published counter never runs ahead of the disk. TERM ends the loop between ticks, never inside a write.
        xa_counter_loop() {
          local n=$1 stop=0
          trap 'stop=1' TERM
          while [ $stop = 0 ]; do
            usleep 200000
            if xa_store $(( n + 1 )) "$XA_STATE/counter"; then
              n=$(( n + 1 ))
              xa_publish $n
            else
              xa_io_error "counter=$(( n + 1 ))"
            fi
          done
        }
        """;

    /// <summary>busybox init's table: a shell on the serial console, respawned; the shutdown action.</summary>
    public const string Inittab = """
        ttyS0::respawn:-/bin/sh
        ::ctrlaltdel:/sbin/reboot
        ::shutdown:/etc/xenaoe/shutdown
        """;

    /// <summary>
    /// <c>/etc/xenaoe/shutdown</c>, run by busybox init before reboot or poweroff: stops the counter loop between writes,
    /// stops the daemons, syncs and remounts the root read-only so the file system is clean on the disk.
    /// </summary>
    public const string Shutdown = """
        #!/bin/sh
        . /etc/xenaoe/lib.sh
        pid=$(cat "$XA_RUN/counter.pid" 2>/dev/null)
        if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
          n=0
          while kill -0 "$pid" 2>/dev/null && [ $n -lt 50 ]; do usleep 100000; n=$(( n + 1 )); done
        fi
        [ -r "$XA_RUN/acpid.pid" ] && kill "$(cat "$XA_RUN/acpid.pid")" 2>/dev/null
        killall httpd 2>/dev/null
        echo "XENAOE-GUEST SHUTDOWN counter=$(cat "$XA_RUN/www/counter" 2>/dev/null) ioErrors=$(cat "$XA_RUN/ioerrors" 2>/dev/null)" > /dev/console
        sync
        umount /tmp /run 2>/dev/null
        if mount -o remount,ro /; then
          echo "XENAOE-GUEST UNMOUNTED root=ro" > /dev/console
        else
          echo "XENAOE-GUEST SHUTDOWN-ERROR cannot remount / read-only" > /dev/console
        fi
        sync
        """;

    /// <summary><c>/etc/acpi/PWRF/00000080</c>: busybox acpid runs it when the ACPI power button is pressed.</summary>
    public const string PowerButton = """
        #!/bin/sh
        echo "XENAOE-GUEST POWER-BUTTON" > /dev/console
        exec /sbin/poweroff
        """;

    /// <summary><c>/usr/lib/xenaoe/status.cgi</c>, served as <c>/cgi-bin/status</c>.</summary>
    public const string StatusCgi = """
        #!/bin/sh
        . /etc/xenaoe/lib.sh
        read up idle < /proc/uptime
        printf 'Content-Type: application/json\r\n\r\n'
        printf '{"counter":%d,"boot":%d,"uptime":%d,"hostname":"%s","ioErrors":%d}\n' \
          "$(xa_load "$XA_RUN/www/counter")" "$(xa_load "$XA_RUN/boot")" "${up%.*}" "$(cat "$XA_RUN/hostname")" "$(xa_load "$XA_RUN/ioerrors")"
        """;

    /// <summary><c>/etc/profile</c> for the serial shell.</summary>
    public const string Profile = """
        export PATH=/bin:/sbin:/usr/bin:/usr/sbin
        export PS1='\h:\w# '
        """;
}
