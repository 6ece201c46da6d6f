#!/usr/bin/env bash
# Benchmarks XenAoE's AoE target (`xenaoe disk serve`) side by side with vblade: same run, same
# network namespaces and veth link, same tmpfs-backed 1 GiB file, same load generator (aoeload.c).
#
# Topology: two namespaces joined by one veth pair (server: target pinned to core 0; client:
# aoeload pinned to core 1).  No bridge: a bridge adds a forwarding hop whose softirq work lands
# on one of the two cores and is the same for both targets, so it only lowers the ceiling and adds
# noise; the anchors in docs (AOE.md) were measured on a plain veth pair too.
#
# Then the durable cases: writes on a disk-backed file (not tmpfs), where a sync costs what a disk
# costs: ours (write-through, the default) against stock vblade (never syncs) and `vblade -s`
# (O_SYNC), in alternating rounds, medians shown (--baseline adds another build of ours, for an A/B).
#
# Writes docs/PERFORMANCE.md (sections "AoE target vs vblade" and "Durable writes on a disk-backed
# file"), results/latest.csv and results/durable.csv.
# Needs root.  Run `run.sh --help` for options.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
COMMAND_LINE="benchmarks/aoe-target/run.sh${*:+ $*}"

DURATION=3 WARMUP=0.5
MTUS="9000 1500"
TARGETS="vblade ours"
QDS="1 16 64"
VERIFY=1
NULL_CEILING=1
WRITE_DOCS=1
VBLADE_ARGS=""
AOELOAD_ARGS=""
REPEAT=1
QUIET_WAIT=3 QUIET_PCT=15
CSV="$HERE/results/latest.csv"
DURABLE=1 DURABLE_ONLY=0
DURABLE_DIR=/var/tmp
DURABLE_ROUNDS=3
DURABLE_CASES="write rand 17 32,write seq 17 8,write seq 17 32"
DURABLE_MIB=512
DURABLE_TARGETS="vblade vblade-s ours"
DURABLE_CSV="$HERE/results/durable.csv"
BASELINE_DLL=""
DOC="$REPO/docs/PERFORMANCE.md"

usage() {
	cat <<EOF
usage: run.sh [options]       (as root)
  --quick              0.6 s per case after a 0.2 s warm-up, no quiet wait (whole matrix in about 2 minutes;
                       a smoke test: use the default for numbers you publish)
  --duration S         measured seconds per case (default $DURATION)
  --warmup S           warm-up seconds per case, not measured (default $WARMUP)
  --mtus "9000 1500"   link MTUs to run
  --targets "vblade ours"
  --qds "1 16 64"      queue depths
  --no-verify          do not verify read data / read back writes (verification is on by default)
  --no-null            skip the null-responder ceiling runs
  --no-docs            do not rewrite docs/PERFORMANCE.md (CSV is still written)
  --csv PATH           where to write the CSV (default results/latest.csv)
  --doc PATH           which markdown file gets the section (default docs/PERFORMANCE.md)
  --vblade-args ARGS   extra vblade options, e.g. "-b 64" (default: none, stock vblade)
  --aoeload-args ARGS  extra aoeload options for every case, e.g. "--cap-window"
  --repeat N           run every case N times; the table shows the best (highest IOPS), the CSV all
  --quiet-wait S       before each case wait up to S s for the machine to be under $QUIET_PCT% busy
                       (other work on 2 cores distorts the numbers; default $QUIET_WAIT, 0: never wait)
  --no-durable         skip the durable cases (disk-backed file)
  --durable-only       only the durable cases (the tmpfs matrix and its docs section are left alone)
  --durable-dir DIR    directory on a disk-backed file system for the durable cases' file (default $DURABLE_DIR)
  --durable-rounds N   rounds of the durable cases, each target once per round in turn; medians shown (default $DURABLE_ROUNDS)
  --durable-cases "op pattern sectors qd,..."  (default "$DURABLE_CASES", at MTU 9000)
  --durable-targets "vblade vblade-s ours"   (before is added by --baseline)
  --baseline DLL       also run this xenaoe.dll (e.g. a build of main) in the durable cases, as "before"
EOF
	exit "${1:-0}"
}

while (($#)); do
	case $1 in
	--quick) DURATION=0.6 WARMUP=0.2 QUIET_WAIT=0 ;;
	--duration) DURATION=$2; shift ;;
	--warmup) WARMUP=$2; shift ;;
	--mtus) MTUS=$2; shift ;;
	--targets) TARGETS=$2; shift ;;
	--qds) QDS=$2; shift ;;
	--no-verify) VERIFY=0 ;;
	--no-null) NULL_CEILING=0 ;;
	--no-docs) WRITE_DOCS=0 ;;
	--csv) CSV=$2; shift ;;
	--doc) DOC=$2; shift ;;
	--vblade-args) VBLADE_ARGS=$2; shift ;;
	--aoeload-args) AOELOAD_ARGS=$2; shift ;;
	--repeat) REPEAT=$2; shift ;;
	--quiet-wait) QUIET_WAIT=$2; shift ;;
	--no-durable) DURABLE=0 ;;
	--durable-only) DURABLE_ONLY=1 ;;
	--durable-dir) DURABLE_DIR=$2; shift ;;
	--durable-rounds) DURABLE_ROUNDS=$2; shift ;;
	--durable-cases) DURABLE_CASES=$2; shift ;;
	--durable-targets) DURABLE_TARGETS=$2; shift ;;
	--baseline) BASELINE_DLL=$2; shift ;;
	-h|--help) usage 0 ;;
	*) echo "unknown option: $1" >&2; usage 1 ;;
	esac
	shift
done

[[ $EUID -eq 0 ]] || { echo "run.sh: needs root (namespaces, tmpfs, raw sockets)" >&2; exit 1; }
for tool in ip taskset make cc vblade; do
	command -v "$tool" >/dev/null || { echo "run.sh: missing $tool (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
(($(nproc) >= 2)) || { echo "run.sh: needs 2 cores (target on core 0, generator on core 1)" >&2; exit 1; }
if ((DURABLE)); then
	[[ -d $DURABLE_DIR ]] || { echo "run.sh: --durable-dir $DURABLE_DIR: no such directory" >&2; exit 1; }
	case $(stat -f -c %T "$DURABLE_DIR") in
	tmpfs|ramfs) echo "run.sh: --durable-dir $DURABLE_DIR is on $(stat -f -c %T "$DURABLE_DIR"): the durable cases need a disk-backed file system" >&2; exit 1 ;;
	esac
	[[ -z $BASELINE_DLL || -f $BASELINE_DLL ]] || { echo "run.sh: --baseline $BASELINE_DLL: no such file" >&2; exit 1; }
fi
((DURABLE || !DURABLE_ONLY)) || { echo "run.sh: --durable-only with --no-durable leaves nothing to run" >&2; exit 1; }

# ---------------------------------------------------------------- one run at a time
# Two runs on the same two cores would measure each other: a second run waits for the first.
LOCK=/run/lock/xenaoe-aoe-bench.lock
exec 9>>"$LOCK"
if ! flock -n 9; then
	echo "run.sh: another benchmark run holds $LOCK; waiting (up to 20 min)" >&2
	flock -w 1200 9 || { echo "run.sh: gave up waiting for $LOCK" >&2; exit 1; }
fi

# ---------------------------------------------------------------- state and cleanup
PFX="xab$$"                 # unique per run: namespaces are $PFX-srv and $PFX-cli
SRV="$PFX-srv" CLI="$PFX-cli"
MNT="" TARGET_PID="" DURABLE_WORK=""
LOGDIR="$HERE/results/logs/$(date +%Y%m%d-%H%M%S)-$$"   # target, build and generator logs of this run
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

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_pid "$TARGET_PID"
	TARGET_PID=""
	ip netns del "$SRV" 2>/dev/null || true
	ip netns del "$CLI" 2>/dev/null || true
	[[ -z $DURABLE_WORK ]] || rm -rf -- "$DURABLE_WORK"
	if [[ -n $MNT ]]; then
		umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
		rmdir "$MNT" 2>/dev/null || true
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---------------------------------------------------------------- build
log "building aoeload"
make -s -C "$HERE" >/dev/null
AOELOAD="$HERE/bin/aoeload"

XENAOE_DLL=${XENAOE_DLL:-"$REPO/src/XenAoe.Cli/bin/Release/net10.0/xenaoe.dll"}   # overridable, e.g. to try another build
OURS_STATUS="" # empty: runnable; otherwise the reason it is not run
OURS_MODE="-"
if [[ " $TARGETS " == *" ours "* ]]; then
	log "building xenaoe (dotnet build src/XenAoe.Cli -c Release)"
	# No build servers: MSBuild nodes and the compiler server would otherwise linger during the run.
	if ! (cd "$REPO" && dotnet build src/XenAoe.Cli -c Release -nologo -v q --disable-build-servers) >"$LOGDIR/dotnet-build.log" 2>&1; then
		OURS_STATUS="not run: build failed"
		log "$OURS_STATUS (see $LOGDIR/dotnet-build.log)"
	elif [[ ! -f $XENAOE_DLL ]]; then
		OURS_STATUS="not run: $XENAOE_DLL missing"
		log "$OURS_STATUS"
	fi
fi
xenaoe() { dotnet "$XENAOE_DLL" "$@"; }

# ---------------------------------------------------------------- tmpfs, file, namespaces
MNT=$(mktemp -d /tmp/xenaoe-bench.XXXXXX)
mount -t tmpfs -o size=1200m,mode=0700 "xenaoe-bench-$$" "$MNT"
POOL="$MNT/pool"
mkdir -p "$POOL"
IMG="$POOL/bench.img"

if [[ -z $OURS_STATUS && " $TARGETS " == *" ours "* ]]; then
	# Write-back matches vblade, which never syncs; on tmpfs the difference is small either way.
	if xenaoe disk volume create --help 2>&1 | grep -q -- '--write-back' &&
		xenaoe disk volume create bench --pool "$POOL" --address 1.0 --size 1GiB --write-back >"$LOGDIR/volume-create.log" 2>&1; then
		OURS_MODE="write-back"
	elif xenaoe disk volume create bench --pool "$POOL" --address 1.0 --size 1GiB >"$LOGDIR/volume-create.log" 2>&1; then
		OURS_MODE="write-through"
	else
		OURS_STATUS="not run: volume create failed"
		log "$OURS_STATUS (see $LOGDIR/volume-create.log)"
	fi
fi
if [[ ! -f $IMG ]]; then
	truncate -s 1G "$IMG"
elif (($(stat -c %s "$IMG") != 1 << 30)); then
	log "warning: $IMG is $(stat -c %s "$IMG") bytes, not 1 GiB"
fi

ip netns add "$SRV"
ip netns add "$CLI"
ip -n "$SRV" link add eth0 type veth peer name eth0 netns "$CLI"
for ns in "$SRV" "$CLI"; do
	ip -n "$ns" link set lo up
	ip -n "$ns" link set eth0 up
done

# ---------------------------------------------------------------- CPU accounting
# Other work on this 2-core machine disturbs the numbers; each case records how much CPU went to
# processes other than the target and the generator (an approximate "interference" figure).
HZ=$(getconf CLK_TCK)
cpu_busy_ticks() { awk '/^cpu /{print $2 + $3 + $4; exit}' /proc/stat; }   # user + nice + system, all CPUs
cpu_steal_ticks() { awk '/^cpu /{print $9; exit}' /proc/stat; }
busy_pct() { # busy % of all cores over 0.3 s
	local a b
	a=$(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8, $5 + $6; exit}' /proc/stat)
	sleep 0.3
	b=$(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8, $5 + $6; exit}' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[1] - x[1] + y[2] - x[2]; print (t > 0 ? int(100 * (y[1] - x[1]) / t) : 0) }'
}
QUIET_WAITED=0 NOISY_STARTS=0
wait_quiet() { # waits (up to QUIET_WAIT s) until other work leaves the machine mostly idle
	((QUIET_WAIT > 0)) || return 0
	local start=$SECONDS pct
	while pct=$(busy_pct); ((pct > QUIET_PCT)); do
		if ((SECONDS - start >= QUIET_WAIT)); then
			NOISY_STARTS=$((NOISY_STARTS + 1))
			log "machine still ${pct}% busy after ${QUIET_WAIT} s; running anyway"
			break
		fi
		sleep 0.5
	done
	QUIET_WAITED=$((QUIET_WAITED + SECONDS - start))
}
pid_ticks() { [[ -r /proc/$1/stat ]] && awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat" || echo 0; }

# ---------------------------------------------------------------- targets
SHELF_VBLADE=2 SHELF_OURS=1 SHELF_NULL=3   # distinct shelves: a target that failed to stop cannot answer for another

start_target() { # start_target NAME -> sets TARGET_PID, TARGET_ADDR; returns 1 if it does not come up
	local name=$1 logf="$LOGDIR/target-$1-mtu$MTU.log" i
	case $name in
	vblade)
		TARGET_ADDR="$SHELF_VBLADE.0"
		# shellcheck disable=SC2086  # VBLADE_ARGS is a list of options
		ip netns exec "$SRV" taskset -c 0 vblade $VBLADE_ARGS "$SHELF_VBLADE" 0 eth0 "$IMG" >"$logf" 2>&1 9>&- &
		TARGET_PID=$!
		;;
	vblade-s)
		TARGET_ADDR="$SHELF_VBLADE.0"
		ip netns exec "$SRV" taskset -c 0 vblade -s "$SHELF_VBLADE" 0 eth0 "$IMG" >"$logf" 2>&1 9>&- &
		TARGET_PID=$!
		;;
	ours|before)
		TARGET_ADDR="1.0"
		local dll=$XENAOE_DLL
		[[ $name == before ]] && dll=$BASELINE_DLL
		ip netns exec "$SRV" taskset -c 0 dotnet "$dll" disk serve --pool "$POOL" --interface eth0 >"$logf" 2>&1 9>&- &
		TARGET_PID=$!
		for ((i = 0; i < 600; i++)); do # up to 60 s for the runtime to start
			grep -q serving "$logf" && break
			kill -0 "$TARGET_PID" 2>/dev/null || break
			sleep 0.1
		done
		;;
	null)
		TARGET_ADDR="$SHELF_NULL.0"
		ip netns exec "$SRV" taskset -c 0 "$AOELOAD" --respond -i eth0 -t "$TARGET_ADDR" --size $((1 << 30)) >"$logf" 2>&1 9>&- &
		TARGET_PID=$!
		;;
	esac
	sleep 0.2
	if ! kill -0 "$TARGET_PID" 2>/dev/null; then
		log "$name exited at start: $(tail -3 "$logf" | tr '\n' ' ')"
		wait "$TARGET_PID" 2>/dev/null || true
		TARGET_PID=""
		return 1
	fi
}

stop_target() { stop_pid "$TARGET_PID"; TARGET_PID=""; }

# ---------------------------------------------------------------- one case
CSV_HEADER="date,mtu,target,target_mode,op,pattern,sectors,bytes_per_op,qd,rep,seconds,ops,bytes,mbps,iops,retrans,errors,verify_errors,verified_ops,stale,lat_avg_us,lat_p50_us,lat_p99_us,lat_p999_us,bufcnt,target_cpu_s,target_cpu_pct,gen_cpu_s,other_cpu_pct,steal_pct,status"
RUN_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
TMPCSV="$MNT/results.csv"
echo "$CSV_HEADER" >"$TMPCSV"
RAW="$LOGDIR/raw-results.log"
: >"$RAW"

field() { # field KEY LINE
	local kv
	for kv in $2; do [[ $kv == "$1="* ]] && { echo "${kv#*=}"; return; }; done
	echo ""
}

emit_row() { # emit_row target mode op pattern sectors qd rep status [result line] [target_cpu] [target%] [other%] [steal%]
	local target=$1 mode=${2//,/;} op=$3 pattern=$4 sectors=$5 qd=$6 rep=$7 status=${8//,/;} line=${9:-} tcpu=${10:-} tpct=${11:-} other=${12:-} steal=${13:-}
	local k vals=()
	for k in seconds ops bytes mbps iops retrans errors verify_errors verified_ops stale lat_avg_us lat_p50_us lat_p99_us lat_p999_us bufcnt; do
		vals+=("$(field "$k" "$line")")
	done
	vals+=("$tcpu" "$tpct" "$(field cpu_s "$line")" "$other" "$steal")
	local IFS=,
	echo "$RUN_DATE,$MTU,$target,$mode,$op,$pattern,$sectors,$((sectors * 512)),$qd,$rep,${vals[*]},$status" >>"$TMPCSV"
}

run_case() { # run_case target mode op pattern sectors qd: REPEAT runs; fails if the target exited
	local r n=$REPEAT
	[[ $1 == null || $3 == fill ]] && n=1
	for ((r = 1; r <= n; r++)); do
		run_once "$@" "$r" || return 1
	done
}

run_once() { # run_once target mode op pattern sectors qd rep
	local target=$1 mode=$2 op=$3 pattern=$4 sectors=$5 qd=$6 rep=$7
	local args=(-i eth0 -t "$TARGET_ADDR" --sectors "$sectors" --qd "$qd" --label "$target")
	if [[ $op == fill ]]; then
		args+=(--fill)
	else
		args+=(--op "$op" --pattern "$pattern" --duration "$DURATION" --warmup "$WARMUP")
		# The null responder keeps no data: its reads carry the pattern, its writes cannot be read back.
		((VERIFY)) && [[ $target != null || $op == read ]] && args+=(--verify)
	fi
	# shellcheck disable=SC2206  # AOELOAD_ARGS is a list of options
	args+=($AOELOAD_ARGS)
	local t0 b0 s0 p0 t1 b1 s1 p1 out rc=0 status
	wait_quiet
	# The target's CPU use inside the measured window, sampled beside the run.
	local window="$MNT/window" sampler=""
	rm -f "$window"
	if [[ $op != fill ]]; then
		(
			sleep "$WARMUP"; a=$(pid_ticks "$TARGET_PID") ta=$(date +%s.%N)
			sleep "$DURATION"; b=$(pid_ticks "$TARGET_PID") tb=$(date +%s.%N)
			awk -v a="$a" -v b="$b" -v ta="$ta" -v tb="$tb" -v hz="$HZ" 'BEGIN { printf "%.0f\n", 100 * (b - a) / hz / (tb - ta) }'
		) >"$window" &
		sampler=$!
	fi
	t0=$(date +%s.%N) b0=$(cpu_busy_ticks) s0=$(cpu_steal_ticks) p0=$(pid_ticks "$TARGET_PID")
	out=$(ip netns exec "$CLI" taskset -c 1 "$AOELOAD" "${args[@]}" 2>>"$LOGDIR/aoeload.log") || rc=$?
	t1=$(date +%s.%N) b1=$(cpu_busy_ticks) s1=$(cpu_steal_ticks) p1=$(pid_ticks "$TARGET_PID")
	local tpct=""
	if [[ -n $sampler ]]; then
		wait "$sampler" 2>/dev/null || true
		tpct=$(cat "$window" 2>/dev/null || true)
	fi
	local line
	line=$(grep '^RESULT ' <<<"$out" || true)
	echo "mtu=$MTU $line" >>"$RAW"
	case $rc in
	0) status=ok ;;
	2) status="errors" ;;
	3) status="verify failed" ;;
	*) status="failed (aoeload rc $rc)" ;;
	esac
	if ! kill -0 "$TARGET_PID" 2>/dev/null; then
		status="target exited"
	fi
	local tcpu other steal gcpu
	gcpu=$(field cpu_s "$line")
	read -r tcpu other steal < <(awk -v hz="$HZ" -v t0="$t0" -v t1="$t1" -v b="$((b1 - b0))" -v s="$((s1 - s0))" \
		-v p="$((p1 - p0))" -v g="${gcpu:-0}" 'BEGIN {
			wall = t1 - t0; tc = p / hz; o = b / hz - tc - g; if (o < 0) o = 0
			printf "%.2f %.0f %.0f\n", tc, 100 * o / wall, 100 * s / hz / wall }')
	[[ -n $tpct ]] || tpct=$(awk -v c="$tcpu" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.0f", 100 * c / (t1 - t0) }')
	emit_row "$target" "$mode" "$op" "$pattern" "$sectors" "$qd" "$rep" "$status" "$line" "$tcpu" "$tpct" "$other" "$steal"
	log "$(printf '%-6s mtu %-4s %-5s %-4s %4d B qd %-2s %9s MB/s %8s IOPS p50 %7s p99 %8s us retx %-6s target cpu %3s%% %s (other cpu %s%%)' \
		"$target" "$MTU" "$op" "$pattern" $((sectors * 512)) "$qd" "$(field mbps "$line")" "$(field iops "$line")" \
		"$(field lat_p50_us "$line")" "$(field lat_p99_us "$line")" "$(field retrans "$line")" "$tpct" "$status" "$other")"
	[[ $status != "target exited" ]]
}

not_run_matrix() { # not_run_matrix target mode reason
	local op pattern sectors qd
	for wl in "read seq" "write seq" "read rand" "write rand"; do
		read -r op pattern <<<"$wl"
		for sectors in "$BIG" 1; do
			for qd in $QDS; do emit_row "$1" "$2" "$op" "$pattern" "$sectors" "$qd" "" "$3"; done
		done
	done
}

run_matrix() { # run_matrix target mode
	local target=$1 mode=$2 op pattern sectors qd
	if ! start_target "$target"; then
		not_run_matrix "$target" "$mode" "not run: target did not start"
		return
	fi
	# The fill writes the whole file with the pattern through this target (and is a first check
	# that its writes land); the read cases then verify every sector they read.
	if ! run_case "$target" "$mode" fill seq "$BIG" 16; then
		not_run_matrix "$target" "$mode" "not run: target exited during fill"
		TARGET_PID=""
		return
	fi
	for wl in "read seq" "write seq" "read rand" "write rand"; do
		read -r op pattern <<<"$wl"
		for sectors in "$BIG" 1; do
			for qd in $QDS; do
				if [[ -z $TARGET_PID ]]; then
					emit_row "$target" "$mode" "$op" "$pattern" "$sectors" "$qd" "" "not run: target exited"
				elif ! run_case "$target" "$mode" "$op" "$pattern" "$sectors" "$qd"; then
					log "$target exited: $(tail -2 "$LOGDIR/target-$target-mtu$MTU.log" | tr '\n' ' ')"
					wait "$TARGET_PID" 2>/dev/null || true
					TARGET_PID=""
				fi
			done
		done
	done
	stop_target
}

# ---------------------------------------------------------------- durable cases
durable_mode() { # durable_mode TARGET: how it makes writes durable
	case $1 in
	vblade) echo "stock (no sync)" ;;
	vblade-s) echo "-s (O_SYNC)" ;;
	ours) echo "write-through (default)" ;;
	before) echo "write-through (default), --baseline build" ;;
	esac
}

run_durable() { # the durable cases: DURABLE_ROUNDS rounds, every target once per round, on a fully written file on DURABLE_DIR
	local targets=${DURABLE_TARGETS//ours/} round t c op pattern sectors qd
	MTU=9000
	ip -n "$SRV" link set eth0 mtu "$MTU"
	ip -n "$CLI" link set eth0 mtu "$MTU"
	DURABLE_WORK=$(mktemp -d "$DURABLE_DIR/xenaoe-bench.XXXXXX")
	IMG="$DURABLE_WORK/durable.img" POOL="$DURABLE_WORK/pool"
	log "durable cases: writing a $DURABLE_MIB MiB file in $DURABLE_DIR ($(stat -f -c %T "$DURABLE_DIR") on $(findmnt -n -o SOURCE --target "$DURABLE_DIR"))"
	# Written in full, not sparse: no case pays for block allocation, and every case overwrites the same blocks.
	dd if=/dev/zero of="$IMG" bs=1M count="$DURABLE_MIB" conv=fsync status=none
	if [[ " $DURABLE_TARGETS " != *" ours "* && -z $BASELINE_DLL ]]; then
		:
	elif [[ -z $OURS_STATUS ]] && xenaoe disk volume create bench --pool "$POOL" --address 1.0 --device "$IMG" >"$LOGDIR/durable-volume-create.log" 2>&1; then
		[[ -z $BASELINE_DLL ]] || targets="$targets before"
		[[ " $DURABLE_TARGETS " != *" ours "* ]] || targets="$targets ours"
	else
		log "durable cases: ours not run (${OURS_STATUS:-volume create failed, see $LOGDIR/durable-volume-create.log})"
	fi
	TMPCSV="$MNT/durable.csv"
	echo "$CSV_HEADER" >"$TMPCSV"
	for ((round = 1; round <= DURABLE_ROUNDS; round++)); do
		for t in $targets; do
			if ! start_target "$t"; then
				emit_row "$t" "$(durable_mode "$t")" write - 0 0 "$round" "not run: target did not start"
				continue
			fi
			IFS=, read -ra cases <<<"$DURABLE_CASES"
			for c in "${cases[@]}"; do
				read -r op pattern sectors qd <<<"$c"
				# Dirty pages another case left (stock vblade leaves hundreds of MiB) are written back now, not during this case.
				sync "$IMG"
				run_once "$t" "$(durable_mode "$t")" "$op" "$pattern" "$sectors" "$qd" "$round" || break
			done
			# How many fdatasyncs the writes cost (counters of our disk server, from its pool's API socket).
			[[ $t != ours && $t != before ]] || xenaoe disk counters --pool "$POOL" >"$LOGDIR/counters-$t-round$round.txt" 2>&1 || true
			stop_target
		done
	done
	cp "$TMPCSV" "$DURABLE_CSV"
	log "CSV: $DURABLE_CSV"
}

# ---------------------------------------------------------------- the matrix
VBLADE_MODE="stock${VBLADE_ARGS:+ $VBLADE_ARGS} (no sync)"
((DURABLE_ONLY)) && MTUS=""
for MTU in $MTUS; do
	ip -n "$SRV" link set eth0 mtu "$MTU"
	ip -n "$CLI" link set eth0 mtu "$MTU"
	BIG=$(((MTU - 36) / 512))
	((BIG > 255)) && BIG=255
	log "MTU $MTU: $BIG sectors per frame ($((BIG * 512)) B) and 512 B requests"
	for target in $TARGETS; do
		case $target in
		vblade) run_matrix vblade "$VBLADE_MODE" ;;
		ours)
			if [[ -n $OURS_STATUS ]]; then
				not_run_matrix ours "-" "$OURS_STATUS"
			else
				run_matrix ours "$OURS_MODE"
			fi
			;;
		*) echo "unknown target $target" >&2; exit 1 ;;
		esac
	done
	if ((NULL_CEILING)) && start_target null; then
		# The generator's own ceiling on this link: a responder that does no I/O.
		for c in "read seq $BIG 1" "read seq $BIG 64" "write seq $BIG 64" "read rand 1 64" "write rand 1 64"; do
			read -r op pattern sectors qd <<<"$c"
			run_case null "no I/O" "$op" "$pattern" "$sectors" "$qd" || break
		done
		stop_target
	fi
done

if ((!DURABLE_ONLY)); then
	cp "$TMPCSV" "$CSV"
	log "CSV: $CSV"
fi
((DURABLE)) && run_durable

# ---------------------------------------------------------------- docs/PERFORMANCE.md
((WRITE_DOCS)) || exit 0

CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
VBLADE_VERSION=$(dpkg-query -W -f='${Version}' vblade 2>/dev/null || echo unknown)
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$REPO" status --porcelain -- src 2>/dev/null) ]] || COMMIT="$COMMIT + uncommitted changes in src/"

if ((!DURABLE_ONLY)); then
SECTION="$MNT/section.md"
{
	echo "## AoE target vs vblade"
	echo
	echo "Generated by \`benchmarks/aoe-target/run.sh\`; raw lines in \`benchmarks/aoe-target/results/latest.csv\`."
	echo
	echo "- Date: $RUN_DATE"
	echo "- Command: \`sudo $COMMAND_LINE\` (from the repository root)"
	echo "- Machine: $(nproc) cores ($CPU_MODEL), kernel $(uname -r), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM"
	echo "- Source: $COMMIT; vblade $VBLADE_VERSION"
	echo "- Setup: two network namespaces joined by one veth pair; target pinned to core 0 (\`taskset -c 0\`), load generator (\`aoeload\`, one thread, sendmmsg/recvmmsg) pinned to core 1; a 1 GiB file on a tmpfs mounted for the run, filled with a stamped pattern through each target before its cases."
	echo "- Each case: ${WARMUP} s warm-up, then ${DURATION} s measured$( ((REPEAT > 1)) && echo ", run $REPEAT times (the table shows the best by IOPS, the CSV every run)"). Queue depth = commands outstanding, each its own tag; a late command is retransmitted (adaptive timeout, at least 10 ms)."
	echo "- Quiet wait: before each case up to ${QUIET_WAIT} s for the machine to drop under ${QUIET_PCT}% busy; waited ${QUIET_WAITED} s in all, $NOISY_STARTS cases started busy anyway."
	echo "- Data checked: $( ((VERIFY)) && echo "yes: every sector of every read is checked against the pattern; after each write case the last 4096 writes are read back and must carry that case's stamp" || echo "no (--no-verify)")."
	echo "- Modes: vblade $VBLADE_MODE (it acknowledges writes after pwrite() and never syncs; it advertises the buffer count shown); ours: $OURS_MODE."
	echo "- MB/s are 10^6 bytes/s of payload. Latency is per command, from first send to reply, in microseconds. *retx*: retransmits (a late or lost frame). *CPU %*: the target's CPU time during the measured window, % of its one core (a target that spins on its socket shows ~100 % even at queue depth 1). *other CPU*: CPU used by processes other than target and generator during the case, % of one core (interference from other work on the machine)."
	echo
	awk -F, -v ours_status="$OURS_STATUS" -v warmup="$WARMUP" '
	NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
	function sz(b) { return b >= 1024 ? sprintf("%.1f KiB", b / 1024) : b " B" }
	function cell(line, id,   r, st, mark) { # five columns: MB/s, IOPS, p50 / p99, retransmits, target CPU %
		if (line == "") return " | | | | |"
		split(line, r, ",")
		st = r[c["status"]]
		if (st ~ /^not run/) return " | " st " | | | |"
		mark = st == "ok" ? "" : " (" st ")"
		if (bad[id] && st == "ok") mark = sprintf(" (**%s in %d of %d runs**)", badwhat[id], bad[id], runs[id])
		else if (st != "ok") mark = " (**" st "**)"
		return sprintf(" | %.0f%s | %.0f | %s | %s | %s", r[c["mbps"]], mark, r[c["iops"]], lat(r), r[c["retrans"]], r[c["target_cpu_pct"]])
	}
	function lat(r) { return r[c["lat_p50_us"]] == "" ? "" : sprintf("%.0f / %.0f", r[c["lat_p50_us"]], r[c["lat_p99_us"]]) }
	{
		mtu = $c["mtu"]; t = $c["target"]; key = $c["op"] " " $c["pattern"] " " $c["bytes_per_op"] " " $c["qd"]
		if (!(mtu in seen)) { seen[mtu] = 1; mtus[++nm] = mtu }
		if ($c["op"] == "fill") { fill[mtu, t] = $0; next }
		if (t == "null") { nul[mtu, ++nn[mtu]] = $0; next }
		if (!((mtu, key) in k)) { k[mtu, key] = 1; keys[mtu, ++nk[mtu]] = key }
		# Repeats: keep the best run (highest IOPS among those that completed without errors).
		better = !((mtu, key, t) in row) || ($c["status"] == "ok" && (best_status[mtu, key, t] != "ok" || $c["iops"] + 0 > best_iops[mtu, key, t]))
		if (better) { row[mtu, key, t] = $0; best_iops[mtu, key, t] = $c["iops"] + 0; best_status[mtu, key, t] = $c["status"] }
		# A failure in any repeat is shown, never hidden behind a better repeat.
		runs[mtu, key, t]++
		if ($c["status"] != "ok" && $c["status"] !~ /^not run/) { bad[mtu, key, t]++; badwhat[mtu, key, t] = $c["status"] }
		if ($c["other_cpu_pct"] != "" && $c["other_cpu_pct"] + 0 > maxother) maxother = $c["other_cpu_pct"] + 0
		if ($c["bufcnt"] != "") bufcnt[t] = $c["bufcnt"]
	}
	END {
		for (m = 1; m <= nm; m++) {
			mtu = mtus[m]
			printf "### MTU %s\n\n", mtu
			for (tt = 1; tt <= 2; tt++) {
				t = tt == 1 ? "vblade" : "ours"
				if ((mtu, t) in fill) {
					split(fill[mtu, t], f, ",")
					printf "Fill through %s: %s MB/s (%s commands of %s, status %s).  \n", t, f[c["mbps"]], f[c["ops"]], sz(f[c["bytes_per_op"]]), f[c["status"]]
				}
			}
			print ""
			print "| case | vblade MB/s | vblade IOPS | vblade p50 / p99 us | vblade retx | vblade CPU % | ours MB/s | ours IOPS | ours p50 / p99 us | ours retx | ours CPU % | ours/vblade IOPS | other CPU % (v / o) |"
			print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
			for (i = 1; i <= nk[mtu]; i++) {
				key = keys[mtu, i]
				split(key, kk, " ")
				label = kk[2] " " kk[1] " " sz(kk[3]) " qd" kk[4]
				line = "| " label cell(row[mtu, key, "vblade"], mtu SUBSEP key SUBSEP "vblade") cell(row[mtu, key, "ours"], mtu SUBSEP key SUBSEP "ours")
				nv = split(row[mtu, key, "vblade"], v, ","); no = split(row[mtu, key, "ours"], o, ",")
				ratio = ""
				if (no && o[c["status"]] ~ /^not run/)
					ratio = "not run"
				else if (nv && no && v[c["iops"]] + 0 > 0 && o[c["iops"]] != "")
					ratio = sprintf("%.2f", o[c["iops"]] / v[c["iops"]])
				line = line " | " ratio " | " (nv ? v[c["other_cpu_pct"]] : "") " / " (no ? o[c["other_cpu_pct"]] : "") " |"
				print line
			}
			print ""
			if (nn[mtu]) {
				printf "Load generator ceiling at MTU %s (null responder: answers every command without I/O, pinned like the targets):\n\n", mtu
				print "| case | MB/s | IOPS | p50 / p99 us | retx | responder CPU % | generator CPU s per s | other CPU % |"
				print "|---|---:|---:|---:|---:|---:|---:|---:|"
				for (i = 1; i <= nn[mtu]; i++) {
					split(nul[mtu, i], r, ",")
					printf "| %s %s %s qd%s | %.0f | %.0f | %s | %s | %s | %.2f | %s |\n", r[c["pattern"]], r[c["op"]], sz(r[c["bytes_per_op"]]), r[c["qd"]], r[c["mbps"]], r[c["iops"]], lat(r), r[c["retrans"]], r[c["target_cpu_pct"]], r[c["gen_cpu_s"]] / (r[c["seconds"]] + warmup), r[c["other_cpu_pct"]]
				}
				print ""
			}
		}
		if ("vblade" in bufcnt) printf "vblade advertised a buffer count of %s; queue depths above it overflow its socket buffer (SO_RCVBUF = buffer count x MTU) and show up as retransmits.\n", bufcnt["vblade"]
		if ("ours" in bufcnt) printf "Ours advertised a buffer count of %s.\n", bufcnt["ours"]
		if (ours_status != "") printf "\nOurs: %s.\n", ours_status
		if (maxother > 10) printf "\nOther work used up to %d%% of a core during some cases: treat those rows as noisy.\n", maxother
	}' "$CSV"
} >"$SECTION"
fi

if ((DURABLE)); then
DURABLE_SECTION="$MNT/durable-section.md"
{
	echo "## Durable writes on a disk-backed file"
	echo
	echo "Generated by \`benchmarks/aoe-target/run.sh\`; raw lines in \`benchmarks/aoe-target/results/durable.csv\`."
	echo
	echo "- Date: $RUN_DATE"
	echo "- Command: \`sudo $COMMAND_LINE\` (from the repository root)"
	DEV=$(findmnt -n -o SOURCE --target "$DURABLE_DIR")
	echo "- Machine: $(nproc) cores ($CPU_MODEL), kernel $(uname -r); the file on $(stat -f -c %T "$DURABLE_DIR") on $DEV (write cache: $(cat "/sys/block/$(basename "$DEV")/queue/write_cache" 2>/dev/null || echo unknown))"
	echo "- Source: $COMMIT; vblade $VBLADE_VERSION$([[ -n $BASELINE_DLL ]] && echo "; before: $BASELINE_DLL")"
	echo "- Setup: as above (veth, MTU 9000, target on core 0, aoeload on core 1), but a $DURABLE_MIB MiB file written in full on $DURABLE_DIR, synced before every case. $DURABLE_ROUNDS rounds; in each, every target in turn is started, runs every case (${WARMUP} s warm-up, ${DURATION} s measured), and stops. The table shows the median of the rounds; the CSV every run."
	echo "- Modes: stock vblade acknowledges after pwrite() and never syncs (a crash loses what the page cache held); \`vblade -s\` opens the file O_SYNC (one sync per write, one write at a time); ours acknowledges a write once durable, with one fdatasync per group of writes (group commit)."
	echo
	awk -F, -v rounds="$DURABLE_ROUNDS" '
	NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
	function sz(b) { return b >= 1024 ? sprintf("%.1f KiB", b / 1024) : b " B" }
	function median(list,   n, v, i, j, t) {
		n = split(list, v, " ")
		for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
		return n == 0 ? "" : (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2)
	}
	{
		if ($c["status"] ~ /^not run/) { notrun[$c["target"]] = $c["status"]; next }
		key = $c["pattern"] " " $c["op"] " " sz($c["bytes_per_op"]) " qd" $c["qd"]
		if (!(key in seenkey)) { seenkey[key] = 1; keys[++nk] = key }
		t = $c["target"]; seen[t] = 1
		iops[key, t] = iops[key, t] " " $c["iops"]; mbps[key, t] = mbps[key, t] " " $c["mbps"]
		p50[key, t] = p50[key, t] " " $c["lat_p50_us"]; p99[key, t] = p99[key, t] " " $c["lat_p99_us"]
		cpu[key, t] = cpu[key, t] " " $c["target_cpu_pct"]; other[key, t] = other[key, t] " " $c["other_cpu_pct"]
		if ($c["status"] != "ok") bad[key, t] = bad[key, t] " " $c["status"]
	}
	function cell(key, t) {
		if (!((key, t) in iops)) return " | "
		return sprintf(" | %.0f (%.0f MB/s)%s | %.0f / %.0f", median(iops[key, t]), median(mbps[key, t]), bad[key, t] == "" ? "" : " (**" bad[key, t] "**)", median(p50[key, t]), median(p99[key, t]))
	}
	function ratio(key, a, b) { return ((key, a) in iops) && ((key, b) in iops) && median(iops[key, b]) > 0 ? sprintf("%.2f", median(iops[key, a]) / median(iops[key, b])) : "" }
	END {
		nt = split("vblade vblade-s before ours", order, " ")
		head = "| case"; rule = "|---"
		for (i = 1; i <= nt; i++) if (order[i] in seen) {
			name = order[i] == "vblade" ? "stock vblade" : order[i] == "vblade-s" ? "vblade -s" : order[i]
			head = head " | " name " IOPS (MB/s) | " name " p50 / p99 us"; rule = rule "|---:|---:"
		}
		head = head " | ours / vblade | ours / vblade -s" ("before" in seen ? " | ours / before" : "") " | CPU % ours | other CPU % |"
		rule = rule "|---:|---:" ("before" in seen ? "|---:" : "") "|---:|---:|"
		print head; print rule
		for (k = 1; k <= nk; k++) {
			key = keys[k]; line = "| " key
			for (i = 1; i <= nt; i++) if (order[i] in seen) line = line cell(key, order[i])
			line = line " | " ratio(key, "ours", "vblade") " | " ratio(key, "ours", "vblade-s") ("before" in seen ? " | " ratio(key, "ours", "before") : "")
			line = line " | " median(cpu[key, "ours"]) " | " median(other[key, "ours"]) " |"
			print line
		}
		for (t in notrun) printf "\n%s: %s.\n", t, notrun[t]
	}' "$DURABLE_CSV"
} >"$DURABLE_SECTION"
fi

splice_section() { # splice_section HEADING FILE: replace the section (from its heading to the next "## " heading) or append it
	mkdir -p "$(dirname "$DOC")"
	[[ -f $DOC ]] || printf '# Performance\n\nMeasured numbers, each section written by the script it names.\n\n' >"$DOC"
	awk -v sec="$2" -v heading="$1" '
		BEGIN { while ((getline l < sec) > 0) s = s l "\n" }
		$0 == heading || $0 ~ ("^" heading "[[:space:]]+$") { printf "%s", s; done = 1; skip = 1; next }
		skip && /^## / { skip = 0; print ""; }
		!skip { print }
		END { if (!done) printf "\n%s", s }' "$DOC" >"$DOC.tmp.$$"
	# Collapse runs of blank lines the splice may leave.
	cat -s "$DOC.tmp.$$" >"$DOC"
	rm -f "$DOC.tmp.$$"
}
((DURABLE_ONLY)) || splice_section "## AoE target vs vblade" "$SECTION"
((DURABLE)) && splice_section "## Durable writes on a disk-backed file" "$DURABLE_SECTION"
log "wrote $DOC"
