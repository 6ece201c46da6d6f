#!/usr/bin/env bash
# Benchmarks the CPU server's data path side by side in one run: an NBD export, driven by
# `fio --ioengine=nbd` over a unix socket, of
#   (a) one local tmpfs file served by nbdkit (the ceiling: no network, no mirror),
#   (b) the mirror a user can assemble today from standard parts: qemu-storage-daemon's `quorum`
#       over two NBD clients, to nbdkit on two disk servers over TCP,
#   (c) our mirror (`xenaoe mirror serve`) over two vblade targets (AoE),
#   (d) our mirror over our own targets (`xenaoe disk serve`).
#
# Topology (all in network namespaces made for the run; nothing leaves them): a "switch" namespace
# holds two bridges, switch A and switch B (MTU 9000); the cpu server and the two disk servers each
# have eth0 on switch A and eth1 on switch B.  (b) runs TCP: disk 1 is reached over switch A
# (10.99.1.0/24), disk 2 over switch B (10.99.2.0/24), one leg per switch.  (c) and (d) run AoE on
# both NICs.  Files live on a tmpfs mounted for the run; every setup fills its whole device once
# before its cases, so reads always hit written pages on every leg.
#
# Nothing is pinned: the setups run different numbers of processes (2 in (a), 4 in (b), 6 in (c),
# 4 in (d) with fio), and on 2 cores any pinning chooses a winner; a CPU server lets the scheduler
# place them too.  Each case records the CPU the setup's servers, fio and everything else used.
#
# Writes docs/PERFORMANCE.md (section "Data path: NBD export of a mirror"), results/latest.csv and
# the raw fio JSON in results/latest-json/.  Needs root.  Run `run.sh --help` for options.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
COMMAND_LINE="benchmarks/data-path/run.sh${*:+ $*}"

RUNTIME=4 RAMP=1
QDS="1 32"
SETUPS="a b c d"
SIZE_MIB=1024
QUIET_WAIT=3 QUIET_PCT=15
NOISY_PCT=25 NOISY_RETRIES=2
WRITE_DOCS=1
BUILD=1
B_EXTENTS=0
QUORUM_READ=fifo
VBLADE_NICS=2
VERIFY_MIB=64
RESYNC_MIB=512
FRAMES=1
RESYNC_MBPS=0
CSV="$HERE/results/latest.csv"
DOC="$REPO/docs/PERFORMANCE.md"

usage() {
	cat <<EOF
usage: run.sh [options]       (as root)
  --quick              0.5 s ramp and 1 s measured per case, no quiet wait, no reruns (about 2 min
                       with all four setups; a smoke test: use the default for numbers you publish)
  --runtime S          measured seconds per case (default $RUNTIME)
  --ramp S             seconds per case before measuring (fio --ramp_time, default $RAMP)
  --qds "1 32"         queue depths (fio --iodepth)
  --setups "a b c d"   which setups to run (a: nbdkit on a local file; b: qemu-storage-daemon quorum
                       over nbdkit x2; c: our mirror over vblade x2; d: our mirror over our targets)
  --size-mib N         size of every file / volume in MiB (default $SIZE_MIB)
  --quorum-read P      quorum read-pattern for (b): fifo (default: read from the first leg, the
                       second on error) or quorum (read both legs and compare)
  --b-extents          let nbdkit answer block-status queries in (b) (its default).  Off by default:
                       on tmpfs every qemu NBD read then costs a ~10 ms SEEK_HOLE (see the docs section)
  --vblade-nics N      (c): 2 (default) runs one vblade per NIC per disk server (both switches),
                       1 serves switch A only
  --resync-mib N       (c), (d): after the cases, disk server 2 is killed, N MiB are written through
                       the degraded mirror, the server is restarted and the mirror's resync of the
                       dirty regions is timed (default $RESYNC_MIB; 0 skips it)
  --no-frames          skip the AoE frame-path rows (aoeload to null responders and to our disk
                       servers, no NBD and no mirror: what the topology allows AoE writes)
  --resync-mbps N      the mirror's resync ceiling (\`mirror serve --resync-mbps\`) during the run
                       (default $RESYNC_MBPS: unthrottled, the data path's own speed; the daemon's default is 256)
  --no-build           use the existing xenaoe build instead of running dotnet build
  --no-docs            do not rewrite docs/PERFORMANCE.md (CSV and JSON are still written)
  --csv PATH           where to write the CSV (default results/latest.csv); fio's JSON goes beside
                       it, in results/latest-json/ for the default
  --doc PATH           which markdown file gets the section (default docs/PERFORMANCE.md)
  --quiet-wait S       before each case wait up to S s for the machine to be under $QUIET_PCT% busy
                       (other work on 2 cores distorts the numbers; default $QUIET_WAIT, 0: never wait)
  --noisy-retries N    run a case again (up to N times) when other work used more than $NOISY_PCT% of a core
                       during it; the attempt with the least other work is kept (default $NOISY_RETRIES)
EOF
	exit "${1:-0}"
}

while (($#)); do
	case $1 in
	--quick) RUNTIME=1 RAMP=0.5 QUIET_WAIT=0 NOISY_RETRIES=0 ;;
	--runtime) RUNTIME=$2; shift ;;
	--ramp) RAMP=$2; shift ;;
	--qds) QDS=$2; shift ;;
	--setups) SETUPS=$2; shift ;;
	--size-mib) SIZE_MIB=$2; shift ;;
	--quorum-read) QUORUM_READ=$2; shift ;;
	--b-extents) B_EXTENTS=1 ;;
	--vblade-nics) VBLADE_NICS=$2; shift ;;
	--resync-mib) RESYNC_MIB=$2; shift ;;
	--no-frames) FRAMES=0 ;;
	--resync-mbps) RESYNC_MBPS=$2; shift ;;
	--no-build) BUILD=0 ;;
	--no-docs) WRITE_DOCS=0 ;;
	--csv) CSV=$2; shift ;;
	--doc) DOC=$2; shift ;;
	--quiet-wait) QUIET_WAIT=$2; shift ;;
	--noisy-retries) NOISY_RETRIES=$2; shift ;;
	-h|--help) usage 0 ;;
	*) echo "unknown option: $1" >&2; usage 1 ;;
	esac
	shift
done
for s in $SETUPS; do [[ $s == [abcd] ]] || { echo "run.sh: unknown setup '$s' (a, b, c, d)" >&2; exit 1; }; done
[[ $QUORUM_READ == fifo || $QUORUM_READ == quorum ]] || { echo "run.sh: --quorum-read fifo|quorum" >&2; exit 1; }
[[ $VBLADE_NICS == 1 || $VBLADE_NICS == 2 ]] || { echo "run.sh: --vblade-nics 1|2" >&2; exit 1; }
want() { [[ " $SETUPS " == *" $1 "* ]]; }
JSONDIR="${CSV%.csv}-json"   # fio's JSON of every case, beside the CSV

[[ $EUID -eq 0 ]] || { echo "run.sh: needs root (namespaces, tmpfs, raw sockets)" >&2; exit 1; }
need=(ip fio nbdkit nbdinfo python3 flock truncate cmp)
want b && need+=(qemu-storage-daemon)
((FRAMES)) && need+=(make cc)
want c && need+=(vblade)
{ want c || want d; } && need+=(dotnet)
for tool in "${need[@]}"; do
	command -v "$tool" >/dev/null || { echo "run.sh: missing $tool (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
fio --enghelp=nbd >/dev/null 2>&1 || { echo "run.sh: this fio has no nbd ioengine (Debian's fio has it)" >&2; exit 1; }

# ---------------------------------------------------------------- one run at a time
# Shared with benchmarks/aoe-target/run.sh: two benchmarks on the same two cores would measure
# each other, so a run waits for any other benchmark run to finish.
LOCK=/run/lock/xenaoe-aoe-bench.lock
exec 9>>"$LOCK"
if ! flock -n 9; then
	echo "run.sh: another benchmark run holds $LOCK; waiting (up to 20 min)" >&2
	flock -w 1200 9 || { echo "run.sh: gave up waiting for $LOCK" >&2; exit 1; }
fi

# ---------------------------------------------------------------- state and cleanup
PFX="xdp$$"                 # unique per run: namespaces $PFX-sw, $PFX-cpu, $PFX-d1, $PFX-d2
SW="$PFX-sw" CPU="$PFX-cpu" D1="$PFX-d1" D2="$PFX-d2"
NAMESPACES=()
MNT=""
PIDS=() PNAMES=()           # processes of the setup running now (stopped in reverse order)
LOGDIR="$HERE/results/logs/$(date +%Y%m%d-%H%M%S)-$$"   # server, build and fio logs of this run
mkdir -p "$LOGDIR" "$(dirname "$CSV")"
# Keep the logs of the last 5 runs.
find "$HERE/results/logs" -mindepth 1 -maxdepth 1 -type d | sort | head -n -5 | xargs -r rm -rf --

stop_pid() { # stop_pid PID: SIGTERM, wait up to 10 s, then SIGKILL; only PIDs this script started
	local pid=$1 i
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

stop_setup() { # stops the running setup's processes, newest first (the mirror before its legs)
	local i
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
	PIDS=() PNAMES=()
}

cleanup() {
	local rc=$? ns
	trap - EXIT INT TERM
	stop_setup
	for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
	if [[ -n $MNT ]]; then
		umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
		rmdir "$MNT" 2>/dev/null || true
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---------------------------------------------------------------- build (only for c and d)
XENAOE_DLL=${XENAOE_DLL:-"$REPO/src/XenAoe.Cli/bin/Release/net10.0/xenaoe.dll"}   # overridable, e.g. to try another build
OURS_STATUS="" # empty: our mirror can run; otherwise why (c) and (d) are not run
OURS_MODE="-"
if want c || want d; then
	if ((BUILD)); then
		log "building xenaoe (dotnet build src/XenAoe.Cli -c Release)"
		# No build servers: MSBuild nodes and the compiler server would otherwise linger during the run.
		if ! (cd "$REPO" && dotnet build src/XenAoe.Cli -c Release -nologo -v q --disable-build-servers) >"$LOGDIR/dotnet-build.log" 2>&1; then
			OURS_STATUS="not run: build failed"
			log "$OURS_STATUS (see $LOGDIR/dotnet-build.log)"
		fi
	fi
	if [[ -z $OURS_STATUS && ! -f $XENAOE_DLL ]]; then
		OURS_STATUS="not run: $XENAOE_DLL missing"
	elif [[ -z $OURS_STATUS ]]; then
		# Until `xenaoe mirror serve` exists, (c) and (d) say so instead of failing.
		if ! dotnet "$XENAOE_DLL" mirror serve --help 2>&1 | grep -q -- '--nbd-socket'; then
			OURS_STATUS="not run: 'xenaoe mirror serve' is not in this build yet"
		elif ! dotnet "$XENAOE_DLL" mirror create --help 2>&1 | grep -q -- '--assume-clean'; then
			OURS_STATUS="not run: 'xenaoe mirror create --assume-clean' is not in this build yet"
		fi
	fi
	[[ -z $OURS_STATUS ]] || log "(c), (d): $OURS_STATUS"
fi

# ---------------------------------------------------------------- tmpfs, namespaces, switches
MNT=$(mktemp -d /tmp/xenaoe-datapath.XXXXXX)
# Room for two 1 GiB legs (or one file and the next setup's legs) plus metadata; pages are only
# used as they are written, and each setup deletes its files when it is done.
mount -t tmpfs -o size=$((SIZE_MIB * 2 + 512))m,mode=0700 "xenaoe-datapath-$$" "$MNT"
mkdir -p "$MNT/d1" "$MNT/d2"

for ns in "$SW" "$CPU" "$D1" "$D2"; do
	ip netns add "$ns"
	NAMESPACES+=("$ns")
	ip -n "$ns" link set lo up
	# No IPv6 chatter (router solicitations, DAD) on the switches.
	ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1 || true
done
for br in swA swB; do
	ip -n "$SW" link add "$br" mtu 9000 type bridge
	ip -n "$SW" link set "$br" up
done
# Every server: eth0 on switch A, eth1 on switch B.
declare -A NSOF=([cpu]=$CPU [d1]=$D1 [d2]=$D2)
for host in cpu d1 d2; do
	ip -n "$SW" link add "$host-a" mtu 9000 type veth peer name eth0 netns "${NSOF[$host]}" mtu 9000
	ip -n "$SW" link add "$host-b" mtu 9000 type veth peer name eth1 netns "${NSOF[$host]}" mtu 9000
	ip -n "$SW" link set "$host-a" master swA up
	ip -n "$SW" link set "$host-b" master swB up
	ip -n "${NSOF[$host]}" link set eth0 up
	ip -n "${NSOF[$host]}" link set eth1 up
done
ip -n "$CPU" addr add 10.99.1.10/24 dev eth0
ip -n "$CPU" addr add 10.99.2.10/24 dev eth1
ip -n "$D1" addr add 10.99.1.1/24 dev eth0
ip -n "$D1" addr add 10.99.2.1/24 dev eth1
ip -n "$D2" addr add 10.99.1.2/24 dev eth0
ip -n "$D2" addr add 10.99.2.2/24 dev eth1

# ---------------------------------------------------------------- CPU accounting and quiet wait
HZ=$(getconf CLK_TCK)
cpu_busy_ticks() { awk '/^cpu /{print $2 + $3 + $4; exit}' /proc/stat; }   # user + nice + system, all CPUs
busy_pct() { # busy % of all cores over 0.3 s
	local a b
	a=$(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8, $5 + $6; exit}' /proc/stat)
	sleep 0.3
	b=$(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8, $5 + $6; exit}' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[1] - x[1] + y[2] - x[2]; print (t > 0 ? int(100 * (y[1] - x[1]) / t) : 0) }'
}
QUIET_WAITED=0 NOISY_STARTS=0 NOISY_RERUNS=0
wait_quiet() { # waits (up to QUIET_WAIT s) until other work leaves the machine mostly idle
	awk -v w="$QUIET_WAIT" 'BEGIN { exit !(w > 0) }' || return 0
	local start=$SECONDS pct
	while pct=$(busy_pct); ((pct > QUIET_PCT)); do
		if awk -v e="$((SECONDS - start))" -v w="$QUIET_WAIT" 'BEGIN { exit !(e >= w) }'; then
			NOISY_STARTS=$((NOISY_STARTS + 1))
			log "machine still ${pct}% busy after ${QUIET_WAIT} s; running anyway"
			break
		fi
		sleep 0.5
	done
	QUIET_WAITED=$((QUIET_WAITED + SECONDS - start))
}
pid_ticks() { [[ -r /proc/$1/stat ]] && awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat" || echo 0; }
setup_ticks() { local p; for p in "${PIDS[@]}"; do printf '%s ' "$(pid_ticks "$p")"; done; }   # one number per process

# ---------------------------------------------------------------- processes of a setup
start_bg() { # start_bg NAME NAMESPACE COMMAND...: starts a server in a namespace, logs to $LOGDIR/NAME.log
	local name=$1 ns=$2
	shift 2
	ip netns exec "$ns" "$@" >>"$LOGDIR/$name.log" 2>&1 9>&- &
	PIDS+=($!) PNAMES+=("$name")
}

setup_alive() { # true when every process of the setup still runs; names the first that exited
	local i
	for i in "${!PIDS[@]}"; do
		if ! kill -0 "${PIDS[i]}" 2>/dev/null; then
			DEAD="${PNAMES[i]}"
			return 1
		fi
	done
}

wait_nbd() { # wait_nbd NAMESPACE URI [SECONDS]: until the export answers (and its servers still run)
	local ns=$1 uri=$2 limit=${3:-30} i
	for ((i = 0; i < limit * 10; i++)); do
		ip netns exec "$ns" nbdinfo --size "$uri" >/dev/null 2>&1 9>&- && return 0
		setup_alive || { log "$DEAD exited: $(tail -3 "$LOGDIR/$DEAD.log" | tr '\n' ' ')"; return 1; }
		sleep 0.1
	done
	log "$uri did not answer within $limit s"
	return 1
}

wait_log() { # wait_log NAME REGEX [SECONDS]: until the process's log shows REGEX
	local name=$1 re=$2 limit=${3:-60} i
	for ((i = 0; i < limit * 10; i++)); do
		grep -Eq "$re" "$LOGDIR/$name.log" 2>/dev/null && return 0
		setup_alive || { log "$DEAD exited: $(tail -3 "$LOGDIR/$DEAD.log" | tr '\n' ' ')"; return 1; }
		sleep 0.1
	done
	log "$name did not print '$re' within $limit s"
	return 1
}

xenaoe_in() { local ns=$1; shift; ip netns exec "$ns" dotnet "$XENAOE_DLL" "$@" 9>&-; }

EXPORT=bench
SIZE_BYTES=$((SIZE_MIB << 20))
LEG1="$MNT/d1/leg.img" LEG2="$MNT/d2/leg.img"
declare -A DESC MODE

# Each start_X sets URI (the NBD export fio drives), LEGS (files compared after the run, if any)
# and returns 1 if the setup does not come up.
start_a() {
	truncate -s "$SIZE_BYTES" "$MNT/a.img"
	LEGS=""
	URI="nbd+unix:///$EXPORT?socket=$MNT/a.sock"
	start_bg a-nbdkit "$CPU" nbdkit -U "$MNT/a.sock" -f file "$MNT/a.img"
	wait_nbd "$CPU" "$URI"
}

start_b() {
	local noext=(--filter=noextents)
	((B_EXTENTS)) && noext=()
	truncate -s "$SIZE_BYTES" "$LEG1" "$LEG2"
	LEGS="$LEG1 $LEG2"
	URI="nbd+unix:///$EXPORT?socket=$MNT/b.sock"
	start_bg b-nbdkit-d1 "$D1" nbdkit -f -i 10.99.1.1 -p 10809 "${noext[@]}" file "$LEG1"
	start_bg b-nbdkit-d2 "$D2" nbdkit -f -i 10.99.2.2 -p 10809 "${noext[@]}" file "$LEG2"
	wait_nbd "$CPU" "nbd://10.99.1.1/$EXPORT" && wait_nbd "$CPU" "nbd://10.99.2.2/$EXPORT" || return 1
	start_bg b-qsd "$CPU" qemu-storage-daemon \
		--blockdev "driver=nbd,node-name=leg1,server.type=inet,server.host=10.99.1.1,server.port=10809,export=$EXPORT" \
		--blockdev "driver=nbd,node-name=leg2,server.type=inet,server.host=10.99.2.2,server.port=10809,export=$EXPORT" \
		--blockdev "driver=quorum,node-name=mirror,vote-threshold=1,read-pattern=$QUORUM_READ,children.0=leg1,children.1=leg2" \
		--nbd-server "addr.type=unix,addr.path=$MNT/b.sock" \
		--export "type=nbd,id=export0,node-name=mirror,name=$EXPORT,writable=on"
	wait_nbd "$CPU" "$URI"
}

start_mirror() { # start_mirror SETUP: `xenaoe mirror create` then `serve` in the cpu namespace, legs e1.0 and e2.0
	local s=$1
	URI="nbd+unix:///$EXPORT?socket=$MNT/$s.sock"
	if ! xenaoe_in "$CPU" mirror create --interface eth0 --interface eth1 --leg e1.0 --leg e2.0 --assume-clean \
		>"$LOGDIR/$s-mirror-create.log" 2>&1; then
		log "($s) xenaoe mirror create failed: $(tail -3 "$LOGDIR/$s-mirror-create.log" | tr '\n' ' ')"
		START_FAILED="xenaoe mirror create failed"
		return 1
	fi
	start_bg "$s-mirror" "$CPU" dotnet "$XENAOE_DLL" mirror serve --interface eth0 --interface eth1 \
		--leg e1.0 --leg e2.0 --nbd-socket "$MNT/$s.sock" --export "$EXPORT" --resync-mbps "$RESYNC_MBPS"
	wait_log "$s-mirror" 'serving' 60 && wait_nbd "$CPU" "$URI"
}

start_c() { start_c_targets && start_mirror c; }
start_c_targets() {
	truncate -s "$SIZE_BYTES" "$LEG1" "$LEG2"
	LEGS="$LEG1 $LEG2"
	local nics="eth0" nic
	((VBLADE_NICS == 2)) && nics="eth0 eth1"
	for nic in $nics; do start_bg "c-vblade-d1-$nic" "$D1" vblade 1 0 "$nic" "$LEG1"; done
	start_leg2 c
	sleep 0.3
	setup_alive || { log "$DEAD exited: $(tail -3 "$LOGDIR/$DEAD.log" | tr '\n' ' ')"; return 1; }
}

start_d() { start_d_targets && start_mirror d; }
start_d_targets() {
	local n leg wb=()
	LEGS=""
	# Write-back, as vblade and nbdkit (they never sync a write either); on tmpfs the difference is small.
	dotnet "$XENAOE_DLL" disk volume create --help 2>&1 | grep -q -- '--write-back' && wb=(--write-back)
	MODE[d]=${wb:+write-back}
	MODE[d]=${MODE[d]:-write-through}
	for n in 1 2; do
		mkdir -p "$MNT/d$n/pool"
		if ! dotnet "$XENAOE_DLL" disk volume create "leg$n" --pool "$MNT/d$n/pool" --address "e$n.0" --size "${SIZE_MIB}MiB" "${wb[@]}" \
			>"$LOGDIR/d-volume-create-d$n.log" 2>&1; then
			log "(d) volume create failed: $(tail -3 "$LOGDIR/d-volume-create-d$n.log" | tr '\n' ' ')"
			START_FAILED="xenaoe disk volume create failed"
			return 1
		fi
		# The volume's data file (the largest file in the pool), compared with the other leg afterwards.
		leg=$(find "$MNT/d$n/pool" -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2-)
		LEGS="$LEGS $leg"
	done
	start_bg d-disk-d1 "$D1" dotnet "$XENAOE_DLL" disk serve --pool "$MNT/d1/pool" --interface eth0 --interface eth1
	start_leg2 d
	wait_log d-disk-d1 'disk server ready' 60 && wait_log d-disk-d2 'disk server ready' 60
}

start_leg2() { # start_leg2 SETUP: starts disk server 2's target: (c) its vblades, (d) its disk server
	local nic
	case $1 in
	c)
		for nic in eth0 eth1; do
			[[ $nic == eth1 && $VBLADE_NICS == 1 ]] || start_bg "c-vblade-d2-$nic" "$D2" vblade 2 0 "$nic" "$LEG2"
		done
		;;
	d) start_bg d-disk-d2 "$D2" dotnet "$XENAOE_DLL" disk serve --pool "$MNT/d2/pool" --interface eth0 --interface eth1 ;;
	esac
}

kill_leg2() { # kill_leg2 SETUP: SIGKILL to disk server 2's target processes, which leave the setup's process list
	local i
	local -a pids=() names=()
	for i in "${!PIDS[@]}"; do
		if [[ ${PNAMES[i]} == "$1"-vblade-d2-* || ${PNAMES[i]} == "$1"-disk-d2 ]]; then
			kill -KILL "${PIDS[i]}" 2>/dev/null || true
			wait "${PIDS[i]}" 2>/dev/null || true
		else
			pids+=("${PIDS[i]}") names+=("${PNAMES[i]}")
		fi
	done
	PIDS=("${pids[@]}") PNAMES=("${names[@]}")
}

# Resync, (c) and (d): disk server 2 dies (kill -9), fio writes RESYNC_MIB MiB sequentially through
# the mirror (which drops the leg and goes on degraded: every region written is dirty), the server
# comes back, the mirror takes the leg back and copies the dirty regions from leg 1.  The row gives
# the copy's MB/s as the mirror logs it (`resync e1.0 -> e2.0 done: N bytes in T s`), the amount, and
# the longest write of the degraded run (the stall while the mirror gave up on the dead leg).  The
# data check that follows compares the legs byte for byte, so it covers the resynced leg.
resync_case() { # resync_case SETUP
	local s=$1 mark line stall="" done_line="" i bytes secs status
	# The cases dirtied every region; the mirror clears a region's bit once it has seen no write for its
	# clean interval (2 s), so after a quiet moment only what is written degraded is left to copy.
	sleep 5
	mark=$(wc -l <"$LOGDIR/$s-mirror.log")
	kill_leg2 "$s"
	log "($s) resync: disk server 2 killed; writing ${RESYNC_MIB} MiB through the degraded mirror"
	run_fio "$s" degraded 300 --rw=write --bs=1m --iodepth=8 --size="${RESYNC_MIB}m" || true
	line=$(python3 "$HERE/report.py" extract "$FIO_JSON" write)
	stall=$(python3 "$HERE/report.py" maxlat "$FIO_JSON" write)
	start_leg2 "$s"
	for ((i = 0; i < 1200; i++)); do
		done_line=$(tail -n +"$((mark + 1))" "$LOGDIR/$s-mirror.log" | grep -Eo 'resync [^ ]+ -> [^ ]+ done: [0-9]+ bytes in [0-9.]+ s' | tail -1) || true
		[[ -n $done_line ]] && break
		setup_alive || break
		sleep 0.1
	done
	if [[ -z $line ]]; then
		status="degraded write failed (see results/logs)"
	elif [[ $(awk '{print $8}' <<<"$line") != 0 ]]; then
		status="**fio error $(awk '{print $8}' <<<"$line") while a leg was down**"
	elif [[ -z $done_line ]]; then
		setup_alive && status="no resync within 120 s" || status="$DEAD exited"
	else
		read -r bytes secs < <(sed -E 's/.*done: ([0-9]+) bytes in ([0-9.]+) s/\1 \2/' <<<"$done_line")
		status="ok: $((bytes >> 20)) MiB of dirty regions copied in $secs s; degraded writes: $(awk '{print $1}' <<<"$line") MB/s, longest ${stall} ms (the dead leg's timeout)"
		emit "$s" resync write 1m 8 "$status" "$(awk -v b="$bytes" -v t="$secs" 'BEGIN { printf "%.1f", b / 1e6 / (t > 0 ? t : 1e-6) }')"
		log "($s) resync: $status"
		return
	fi
	emit "$s" resync write 1m 8 "$status"
	log "($s) resync: $status"
}

# While our mirror cannot run, (c) and (d) still bring their targets up and check, with the AoE
# load generator of benchmarks/aoe-target (if built there), that each leg answers from the cpu
# server on each switch: the rest of the setup is then known to work when the mirror lands.
AOELOAD="$REPO/benchmarks/aoe-target/bin/aoeload"
probe_targets() { # probe_targets SETUP: sets PROBED to what it found, for the "not run" reason
	local s=$1 n nic ok=() bad=() nics="eth0 eth1"
	[[ -x $AOELOAD ]] || { PROBED="targets not checked: $AOELOAD not built"; return; }
	[[ $s == c && $VBLADE_NICS == 1 ]] && nics=eth0
	START_FAILED=""
	if ! "start_${s}_targets"; then
		stop_setup
		PROBED="targets did not start: ${START_FAILED:-see results/logs}"
		rm -f "$LEG1" "$LEG2"; rm -rf "$MNT/d1/pool" "$MNT/d2/pool"
		return
	fi
	for n in 1 2; do
		for nic in $nics; do
			if timeout 30 ip netns exec "$CPU" "$AOELOAD" -i "$nic" -t "$n.0" --op read --pattern seq --qd 1 --sectors 1 \
				--warmup 0 --duration 0.2 --discover-timeout 5 >>"$LOGDIR/$s-probe.log" 2>&1 9>&-; then
				ok+=("e$n.0 on $nic")
			else
				bad+=("e$n.0 on $nic")
			fi
		done
	done
	stop_setup
	rm -f "$LEG1" "$LEG2"; rm -rf "$MNT/d1/pool" "$MNT/d2/pool"
	if ((${#bad[@]})); then
		PROBED="targets checked: **no answer from ${bad[*]}**"
	else
		PROBED="targets checked: e1.0 and e2.0 answer on $(sed 's/ / and /' <<<"$nics")"
	fi
}

DESC[a]="nbdkit file plugin on one local tmpfs file, unix socket (\`nbdkit -U SOCK -f file FILE\`)"
DESC[b]="qemu-storage-daemon $(qemu-storage-daemon --version 2>/dev/null | awk 'NR==1{print $3}'): \`quorum\` node (vote-threshold=1, read-pattern=$QUORUM_READ) over two \`nbd\` client nodes, exported over NBD on a unix socket; each leg: \`nbdkit -f -i ADDR -p 10809$( ((B_EXTENTS)) || echo ' --filter=noextents') file FILE\` in its disk namespace, disk 1 reached over switch A, disk 2 over switch B (TCP, MTU 9000)"
DESC[c]="\`xenaoe mirror serve --resync-mbps $RESYNC_MBPS\` over two vblade targets (e1.0, e2.0; $( ((VBLADE_NICS == 2)) && echo 'one vblade process per NIC: both switches' || echo 'switch A only'))"
DESC[d]="\`xenaoe mirror serve --resync-mbps $RESYNC_MBPS\` over two \`xenaoe disk serve\` targets (e1.0, e2.0, both NICs)"
MODE[a]="-" MODE[b]="-" MODE[c]="-" MODE[d]="-"

# ---------------------------------------------------------------- cases
CSV_HEADER="date,setup,case,rw,bs,qd,ramp_s,runtime_s,mbps,iops,lat_mean_us,lat_p50_us,lat_p99_us,lat_p999_us,server_cpu_pct,fio_cpu_pct,other_cpu_pct,status"
RUN_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
TMPCSV="$MNT/results.csv"
echo "$CSV_HEADER" >"$TMPCSV"
TMPJSON="$MNT/json"
mkdir -p "$TMPJSON"

CASES=()
for wl in "read 64k" "write 64k" "randread 4k" "randwrite 4k"; do
	for qd in $QDS; do CASES+=("$wl $qd"); done
done
case_label() { # case_label RW BS QD
	local pat=seq op=$1
	[[ $1 == rand* ]] && pat=rand op=${1#rand}
	echo "$pat $op $(sed 's/k$/ KiB/; s/m$/ MiB/' <<<"$2") qd$3"
}
to_ms() { awk -v s="$1" 'BEGIN { printf "%dms", s * 1000 }'; }

emit() { # emit SETUP CASE RW BS QD STATUS [extract-line] [server%] [other%]
	local s=$1 c=$2 rw=$3 bs=$4 qd=$5 status=${6//,/;} line=${7:-} spct=${8:-} opct=${9:-}
	local mbps="" iops="" mean="" p50="" p99="" p999="" fcpu="" err=""
	[[ -n $line ]] && read -r mbps iops mean p50 p99 p999 fcpu err <<<"$line"
	[[ $p50 == - ]] && p50=""
	[[ $p99 == - ]] && p99=""
	[[ $p999 == - ]] && p999=""
	echo "$RUN_DATE,$s,$c,$rw,$bs,$qd,$RAMP,$RUNTIME,$mbps,$iops,$mean,$p50,$p99,$p999,$spct,$fcpu,$opct,$status" >>"$TMPCSV"
}

run_fio() { # run_fio SETUP NAME TIMEOUT FIO-ARGS...: fio in the cpu namespace against $URI, JSON to $TMPJSON/SETUP-NAME.json
	local s=$1 name=$2 limit=$3
	shift 3
	FIO_JSON="$TMPJSON/$s-$name.json"
	rm -f "$FIO_JSON"
	echo "== $s $name: fio $*" >>"$LOGDIR/fio.log"
	# From the tmpfs: fio may leave files in its working directory (verify state is off, but still).
	(cd "$MNT" && timeout --kill-after=5 "$limit" ip netns exec "$CPU" fio --name="$s-$name" --ioengine=nbd --uri="$URI" \
		--output-format=json --output="$FIO_JSON" "$@" >>"$LOGDIR/fio.log" 2>&1 9>&-)
}

run_case() { # run_case SETUP RW BS QD: one measured case; fails if a server of the setup exited
	# A case during which other work used more than NOISY_PCT % of a core runs again (up to
	# NOISY_RETRIES times); the attempt with the least other work is kept.
	local s=$1 rw=$2 bs=$3 qd=$4 label try
	local best_status="" best_line="" best_spct="" best_opct="" best_each=""
	label=$(case_label "$rw" "$bs" "$qd")
	for ((try = 0; ; try++)); do
		measure "$s" "$rw" "$bs" "$qd"
		log "$(printf '(%s) %-22s %8s MB/s %8s IOPS p50 %8s p99 %8s us  server cpu %3s%%  other %3s%%  %s' \
			"$s" "$label" "$(awk '{print $1}' <<<"${M_LINE:--}")" "$(awk '{print $2}' <<<"${M_LINE:--}")" \
			"$(awk '{print $4}' <<<"${M_LINE:--}")" "$(awk '{print $5}' <<<"${M_LINE:--}")" "$M_SPCT" "$M_OPCT" "$M_STATUS")"
		if [[ -z $best_opct ]] || ((M_OPCT < best_opct)); then
			best_status=$M_STATUS best_line=$M_LINE best_spct=$M_SPCT best_opct=$M_OPCT best_each=$M_EACH
			cp -f "$FIO_JSON" "$FIO_JSON.best" 2>/dev/null || rm -f "$FIO_JSON.best"
		fi
		[[ $M_STATUS == ok ]] && ((M_OPCT > NOISY_PCT && try < NOISY_RETRIES)) || break
		log "($s) other work used ${M_OPCT}% of a core: running the case again"
		NOISY_RERUNS=$((NOISY_RERUNS + 1))
	done
	[[ -f $FIO_JSON.best ]] && mv -f "$FIO_JSON.best" "$FIO_JSON"
	((try == 0)) || log "($s) kept the attempt with ${best_opct}% other work"
	emit "$s" "$label" "$rw" "$bs" "$qd" "$best_status" "$best_line" "$best_spct" "$best_opct"
	echo "($s) $label: server CPU by process:$best_each" >>"$LOGDIR/cpu.log"
	[[ $M_STATUS != *exited ]]
}

measure() { # measure SETUP RW BS QD: one fio run; sets M_STATUS, M_LINE (report.py extract), M_SPCT, M_OPCT, M_EACH
	local s=$1 rw=$2 bs=$3 qd=$4 rc=0
	wait_quiet
	local t0 t1 b0 b1 i p=0
	local -a p0 p1
	t0=$(date +%s.%N) b0=$(cpu_busy_ticks)
	read -ra p0 <<<"$(setup_ticks)"
	run_fio "$s" "$rw-$bs-qd$qd" "$(awk -v r="$RUNTIME" -v m="$RAMP" 'BEGIN { printf "%d", r + m + 60 }')" \
		--rw="$rw" --bs="$bs" --iodepth="$qd" --time_based --runtime="$(to_ms "$RUNTIME")" --ramp_time="$(to_ms "$RAMP")" \
		--randrepeat=0 --serialize_overlap=1 --lat_percentiles=1 || rc=$?
	t1=$(date +%s.%N) b1=$(cpu_busy_ticks)
	read -ra p1 <<<"$(setup_ticks)"
	M_EACH=""
	for i in "${!p0[@]}"; do
		p=$((p + p1[i] - p0[i]))
		M_EACH="$M_EACH ${PNAMES[i]} $(awk -v d="$((p1[i] - p0[i]))" -v hz="$HZ" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.0f%%", 100 * d / hz / (t1 - t0) }')"
	done
	M_LINE=$(python3 "$HERE/report.py" extract "$FIO_JSON" "$rw")
	M_STATUS=ok
	((rc == 0)) || M_STATUS="fio failed (rc $rc)"
	[[ -z $M_LINE || $(awk '{print $8}' <<<"$M_LINE") == 0 ]] || M_STATUS="fio error $(awk '{print $8}' <<<"$M_LINE")"
	setup_alive || M_STATUS="$DEAD exited"
	# Server CPU: the setup's processes over the whole fio run (connect + ramp + measured), % of one
	# core.  Other: all CPU time (user + system) minus the servers and fio, % of one core.
	local fcpu
	fcpu=$(awk '{print $7}' <<<"$M_LINE")
	read -r M_SPCT M_OPCT < <(awk -v hz="$HZ" -v t0="$t0" -v t1="$t1" -v b="$((b1 - b0))" -v p="$p" \
		-v f="${fcpu:-0}" -v r="$RUNTIME" -v m="$RAMP" 'BEGIN {
			# fio reports its CPU over the measured part; assume the same during the ramp.
			wall = t1 - t0; o = b / hz - p / hz - f / 100 * (r + m); if (o < 0) o = 0
			printf "%.0f %.0f\n", 100 * p / hz / wall, 100 * o / wall }')
}

not_run() { # not_run SETUP REASON: rows for every case of a setup that did not run
	local s=$1 reason=$2 c rw bs qd
	emit "$s" fill write 1m 8 "$reason"
	for c in "${CASES[@]}"; do
		read -r rw bs qd <<<"$c"
		emit "$s" "$(case_label "$rw" "$bs" "$qd")" "$rw" "$bs" "$qd" "$reason"
	done
}

compare_legs() { # compare_legs FILE1 FILE2: "legs identical" or where they first differ
	# Legs of our mirror start with its superblock (magic XAOEMIRR; data offset and size, int64 LE at
	# bytes 56 and 64) and a bitmap, which differ per leg: compare the mirrored data only.
	local out off=0 size="" what="legs"
	if [[ $(head -c 8 "$1" | tr -c 'A-Z' '.') == XAOEMIRR ]]; then
		off=$(od -An -t d8 -j 56 -N 8 "$1" | tr -d ' ')
		size=$(od -An -t d8 -j 64 -N 8 "$1" | tr -d ' ')
		what="legs' data (from offset $off, $((size >> 20)) MiB)"
	fi
	if out=$(cmp -i "$off" ${size:+-n "$size"} "$1" "$2" 2>&1); then
		echo "$what identical"
	else
		echo "$what differ (${out##*: })"
	fi
}

run_setup() { # run_setup SETUP
	local s=$1 c rw bs qd line status check
	log "($s) starting: ${DESC[$s]}"
	START_FAILED=""
	if ! "start_$s"; then
		stop_setup
		not_run "$s" "not run: ${START_FAILED:-setup did not start} (see results/logs)"
		return
	fi
	# Fill the whole device once, through the setup: every later read hits written pages on every leg.
	run_fio "$s" fill 900 --rw=write --bs=1m --iodepth=8 || true
	line=$(python3 "$HERE/report.py" extract "$FIO_JSON" write)
	status=ok
	[[ -n $line ]] || status="fill failed"
	setup_alive || status="$DEAD exited during fill"
	emit "$s" fill write 1m 8 "$status" "$line"
	log "($s) fill: $(awk '{print $1}' <<<"$line") MB/s ($status)"
	if [[ $status != ok ]]; then
		stop_setup
		for c in "${CASES[@]}"; do
			read -r rw bs qd <<<"$c"
			emit "$s" "$(case_label "$rw" "$bs" "$qd")" "$rw" "$bs" "$qd" "not run: $status"
		done
		return
	fi
	local alive=1
	for c in "${CASES[@]}"; do
		read -r rw bs qd <<<"$c"
		if ((alive)); then
			run_case "$s" "$rw" "$bs" "$qd" || alive=0
		else
			emit "$s" "$(case_label "$rw" "$bs" "$qd")" "$rw" "$bs" "$qd" "not run: $DEAD exited"
		fi
	done
	if ((alive && RESYNC_MIB > 0)) && [[ $s == c || $s == d ]]; then
		resync_case "$s"
		setup_alive || alive=0
	fi
	# Data check: write $VERIFY_MIB MiB of checksummed 4 KiB blocks at random and read them back
	# through the export; then, servers stopped, the two legs must hold the same bytes.
	check="not run"
	if ((alive)); then
		if run_fio "$s" verify 300 --rw=randwrite --bs=4k --iodepth=8 --size="${VERIFY_MIB}m" \
			--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 --randrepeat=0; then
			check="fio verify of ${VERIFY_MIB} MiB written at random: ok"
		else
			check="**fio verify of ${VERIFY_MIB} MiB FAILED** (see results/logs)"
		fi
	fi
	stop_setup
	if [[ -n $LEGS ]]; then
		# shellcheck disable=SC2086  # two paths
		check="$check; $(compare_legs $LEGS)"
	fi
	emit "$s" check - - - "$check"
	log "($s) $check"
	rm -f "$MNT/a.img" "$LEG1" "$LEG2"
	rm -rf "$MNT/d1/pool" "$MNT/d2/pool"
}

# ---------------------------------------------------------------- AoE frame path, no NBD, no mirror
# What the topology itself allows AoE writes: aoeload (benchmarks/aoe-target, C, one thread, batched
# syscalls) writes 8.5 KiB frames (17 sectors) sequentially at depth 64 to e1.0 over switch A and to
# e2.0 over switch B at the same time, as a mirror's two legs; first against null responders (aoeload
# --respond: no storage at all), then against (d)'s disk servers.  A mirror writes every byte to both
# legs, so what a VM could see is at most the smaller leg's MB/s.
frame_case() { # frame_case NAME: both generators at once; emits row NAME with the two legs' MB/s
	local name=$1 n g1 g2 m1 m2 status=ok
	for n in 1 2; do rm -f "$LOGDIR/frames-$name-leg$n.log"; done
	ip netns exec "$CPU" "$AOELOAD" -i eth0 -t 1.0 --op write --pattern seq --sectors 17 --qd 64 --duration "$RUNTIME" \
		--label "$name" >"$LOGDIR/frames-$name-leg1.log" 2>&1 9>&- &
	g1=$!
	ip netns exec "$CPU" "$AOELOAD" -i eth1 -t 2.0 --op write --pattern seq --sectors 17 --qd 64 --duration "$RUNTIME" \
		--label "$name" >"$LOGDIR/frames-$name-leg2.log" 2>&1 9>&- &
	g2=$!
	wait "$g1" || status="aoeload failed (see results/logs)"
	wait "$g2" || status="aoeload failed (see results/logs)"
	m1=$(grep -o 'mbps=[0-9.]*' "$LOGDIR/frames-$name-leg1.log" | cut -d= -f2)
	m2=$(grep -o 'mbps=[0-9.]*' "$LOGDIR/frames-$name-leg2.log" | cut -d= -f2)
	[[ -n $m1 && -n $m2 ]] || status="aoeload printed no result (see results/logs)"
	log "(frames) $name: leg 1 ${m1:--} MB/s, leg 2 ${m2:--} MB/s ($status)"
	[[ $name == warm-up ]] && return
	emit frames "$name" write 8704 64 "$status: leg 1 ${m1:--} MB/s; leg 2 ${m2:--} MB/s" "$(awk -v a="${m1:-0}" -v b="${m2:-0}" 'BEGIN { printf "%.1f", (a < b ? a : b) }')"
}

frame_path() {
	if ! make -s -C "$REPO/benchmarks/aoe-target" >"$LOGDIR/aoeload-build.log" 2>&1; then
		emit frames "null responders" write 8704 64 "not run: aoeload did not build (see results/logs)"
		return
	fi
	log "(frames) AoE writes with no NBD and no mirror: aoeload to null responders, then to (d)'s disk servers"
	start_bg frames-null-d1 "$D1" "$AOELOAD" -i eth0 -t 1.0 --respond
	start_bg frames-null-d2 "$D2" "$AOELOAD" -i eth1 -t 2.0 --respond
	sleep 0.5
	frame_case "null responders"
	stop_setup
	[[ -z $OURS_STATUS ]] || { emit frames "our disk servers" write 8704 64 "not run: $OURS_STATUS"; return; }
	START_FAILED=""
	if start_d_targets; then
		# A first pass of 2 s: the servers' code is compiled (and recompiled with profile data) during its first seconds.
		RUNTIME=2 frame_case warm-up
		frame_case "our disk servers"
	else
		emit frames "our disk servers" write 8704 64 "not run: ${START_FAILED:-disk servers did not start}"
	fi
	stop_setup
	rm -rf "$MNT/d1/pool" "$MNT/d2/pool"
}

# ---------------------------------------------------------------- the run
for s in a b c d; do
	want "$s" || continue
	if [[ ($s == c || $s == d) && -n $OURS_STATUS ]]; then
		reason=$OURS_STATUS
		if [[ $OURS_STATUS == *"not in this build"* ]]; then
			log "($s) our mirror cannot run yet; checking its targets: ${DESC[$s]}"
			probe_targets "$s"
			reason="$OURS_STATUS ($PROBED)"
			log "($s) $reason"
		fi
		not_run "$s" "$reason"
		continue
	fi
	run_setup "$s"
done
((FRAMES)) && frame_path

rm -rf "$JSONDIR"
mkdir -p "$JSONDIR"
cp "$TMPJSON"/*.json "$JSONDIR"/ 2>/dev/null || true
cp "$TMPCSV" "$CSV"
log "CSV: $CSV; fio JSON: $JSONDIR"

# ---------------------------------------------------------------- docs/PERFORMANCE.md
((WRITE_DOCS)) || exit 0

CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$REPO" status --porcelain -- src 2>/dev/null) ]] || COMMIT="$COMMIT + uncommitted changes in src/"
version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo unknown; }

SECTION="$MNT/section.md"
{
	echo "## Data path: NBD export of a mirror"
	echo
	echo "Generated by \`benchmarks/data-path/run.sh\`; raw numbers in \`benchmarks/data-path/results/latest.csv\`, fio's JSON in \`benchmarks/data-path/results/latest-json/\`."
	echo
	echo "- Date: $RUN_DATE"
	echo "- Command: \`sudo $COMMAND_LINE\` (from the repository root)"
	echo "- Machine: $(nproc) cores ($CPU_MODEL), kernel $(uname -r), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM"
	echo "- Source: $COMMIT; fio $(version fio), nbdkit $(version nbdkit), qemu $(version qemu-system-common), vblade $(version vblade)"
	echo "- Load: \`fio --ioengine=nbd --uri='nbd+unix:///$EXPORT?socket=SOCK'\`, one job, one NBD connection, run in the cpu server's namespace; \`--time_based --ramp_time=${RAMP}s --runtime=${RUNTIME}s\`, \`--randrepeat=0 --serialize_overlap=1 --lat_percentiles=1\` (random cases use fio's random map over the whole ${SIZE_MIB} MiB device; no two requests in flight overlap, so the two legs of a mirror cannot legitimately end up different); no \`--direct\` (meaningless for nbd). Before its cases each setup writes its whole device once (fill: 1 MiB, depth 8), so reads hit written pages on every leg."
	echo "- Topology: network namespaces made for the run; two bridges, switch A and switch B, MTU 9000; the cpu server and both disk servers have eth0 on switch A and eth1 on switch B. Every file is on a tmpfs mounted for the run."
	echo "- Setups:"
	for s in a b c d; do
		want "$s" || continue
		echo "  - ($s) ${DESC[$s]}$([[ ${MODE[$s]} != - ]] && echo "; volumes ${MODE[$s]}")"
	done
	echo "- Nothing pinned: the setups run different numbers of processes (fio + 1 server in (a), + 3 in (b), + 5 in (c), + 3 in (d)); on 2 cores any pinning would favour one layout, and a CPU server lets the scheduler place them too."
	echo "- Quiet wait: before each case up to ${QUIET_WAIT} s for the machine to drop under ${QUIET_PCT}% busy; waited ${QUIET_WAITED} s in all, $NOISY_STARTS cases started busy anyway. A case during which other work used more than ${NOISY_PCT}% of a core ran again, up to ${NOISY_RETRIES} times, keeping the quietest attempt: $NOISY_RERUNS reruns."
	echo "- MB/s are 10^6 bytes/s. Latency: percentiles of fio's total latency per request, submission to completion (\`--lat_percentiles=1\`; with the nbd engine the submit call itself sends the request and a write's data, so fio's clat alone can miss most of it), microseconds. *server CPU*: CPU time of the setup's server processes (nbdkit, qemu-storage-daemon, vblade, xenaoe) over the fio run, % of one core (the machine has 200 %). *fio CPU*: fio's own. *other CPU*: everything else (other work on the machine; kernel softirq time is not in any of the three)."
	echo
	python3 "$HERE/report.py" tables "$CSV"
	echo
	echo "Notes on (b), found while building this benchmark (qemu 7.2, nbdkit 1.32):"
	echo
	echo "- qemu's NBD server answers a read with structured replies and first asks the block layer whether the range is a hole (to send holes as holes). Through \`quorum\` and the \`nbd\` client nodes that becomes an NBD_CMD_BLOCK_STATUS to each leg before every read, and nbdkit's file plugin answers it with \`lseek(SEEK_DATA/SEEK_HOLE)\`, which on a written 1 GiB tmpfs file walks the page cache to the end of the file: ~10 ms. Reads through (b) then ran at 44 IOPS (64 KiB, depth 1), 32 IOPS (64 KiB, depth 32) and 91 / 171 IOPS (4 KiB random, depth 1 / 32), writes unaffected (\`--b-extents\`, 2026-11-22). Earlier (b) reference figures (1.6 GB/s sequential read, 0.8 K IOPS random read) were probably taken on unwritten, sparse legs, where SEEK_HOLE stops early and holes are sent without data. \`--filter=noextents\` on the legs (nbdkit then reports all data and qemu stops asking) removes it; on a disk file system or a block device SEEK_HOLE is cheap, so the default run uses the filter. \`--b-extents\` shows the unfiltered behaviour."
	echo "- \`quorum\` offers read-pattern \`quorum\` (read every leg and vote) and \`fifo\` (first leg, the next on error); there is no round-robin, so (b) reads only ever use disk 1. vote-threshold=1 makes a write succeed if one leg took it; the other leg is then silently stale: quorum keeps no bitmap and has no resync (hence \"not applicable\")."
	echo "- An \`iothread\` for the NBD export (\`--object iothread,id=io0\`, \`--export ...,iothread=io0\`) aborts qemu-storage-daemon 7.2 when an NBD client disconnects (\`nbd_blockdev_client_closed: Assertion 'qemu_in_main_thread() && nbd_server' failed\`): (b) runs in the main loop, single-threaded."
} >"$SECTION"

# Replace the section (from its heading to the next "## " heading) or append it; keep the rest.
mkdir -p "$(dirname "$DOC")"
[[ -f $DOC ]] || printf '# Performance\n\nMeasured numbers, each section written by the script it names.\n\n' >"$DOC"
awk -v sec="$SECTION" '
	BEGIN { while ((getline l < sec) > 0) s = s l "\n" }
	/^## Data path: NBD export of a mirror[[:space:]]*$/ { printf "%s", s; done = 1; skip = 1; next }
	skip && /^## / { skip = 0; print ""; }
	!skip { print }
	END { if (!done) printf "\n%s", s }' "$DOC" >"$DOC.tmp.$$"
# Collapse runs of blank lines the splice may leave.
cat -s "$DOC.tmp.$$" >"$DOC"
rm -f "$DOC.tmp.$$"
log "wrote $DOC"
