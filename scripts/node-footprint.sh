#!/usr/bin/env bash
# Measures what "mfn node" costs on its machine: resident memory (RSS) and
# CPU while idle (connected, waiting for rounds) and during the rounds of
# a job of the default task (mfn-regime, dim 76, the node's default flags),
# on loopback with a one-member cluster from mfn provision.
#
#   scripts/node-footprint.sh            # prints the figures
#   ROUNDS=20 IDLE=30 scripts/node-footprint.sh
#
# Figures: RSS idle (VmRSS after IDLE seconds connected), peak RSS over
# the whole life (VmHWM, data generation included), CPU percent while idle,
# CPU seconds spent over the job divided by its rounds. Linux only (/proc).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-10}"
IDLE="${IDLE:-20}"
WORKERS="${WORKERS:-0}"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -o "$work/mfn" ./cmd/mfn
MFN="$work/mfn"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cat >"$work/project.toml" <<TOML
origin = "mfn.test/footprint"
[[coordinators]]
id = "c1"
host = "127.0.0.1"
raft_port = $(port)
quic_port = $(port)
http_port = $(port)
[[sites]]
id = "s1"
flags = { workers = $WORKERS }
[[operators]]
name = "admin"
role = "admin"
TOML
"$MFN" provision --project "$work/project.toml" --out "$work/kits" >/dev/null
MFN="$MFN" "$work/kits/coordinators/c1/start.sh" >"$work/c1.log" 2>&1 &
pids+=($!)
ctl() { "$MFN" ctl --config "$work/kits/operators/admin/ctl.toml" "$@"; }
for _ in $(seq 100); do
	ctl cluster status 2>/dev/null | grep -Eq '^c1 +leader +Voter +[^ ]+ +[^ -][^ ]* +[^ -][^ ]*( +[^ ]+)?$' && break
	sleep 0.2
done
ctl nodes enroll --kit "$work/kits/sites/s1" >/dev/null
MFN="$MFN" "$work/kits/sites/s1/start.sh" >"$work/s1.log" 2>&1 &
node=$!
pids+=($node)
for _ in $(seq 300); do grep -q '"msg":"connected"\|leader' "$work/s1.log" 2>/dev/null && break; sleep 0.2; done

ticks=$(getconf CLK_TCK)
cpu() { awk '{ print $14 + $15 }' "/proc/$node/stat"; }
kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$node/status"; }

sleep 3
c0=$(cpu)
sleep "$IDLE"
c1=$(cpu)
rss_idle=$(kib VmRSS)
idle_pct=$(awk -v a="$c0" -v b="$c1" -v t="$ticks" -v s="$IDLE" 'BEGIN { printf "%.2f", 100 * (b - a) / t / s }')

ctl jobs create --id fp --task mfn-regime --dim 76 --rule fedavg --f 0 --rounds "$ROUNDS" \
	--min-updates 1 --max-updates 1 --round-deadline 1m >/dev/null
start=$(date +%s.%N)
rss_max=0
for _ in $(seq 3000); do
	r=$(kib VmRSS); [ "$r" -gt "$rss_max" ] && rss_max=$r
	ctl jobs get fp 2>/dev/null | grep -q "rounds: $ROUNDS of $ROUNDS done" && break
	sleep 0.1
done
end=$(date +%s.%N)
c2=$(cpu)
hwm=$(kib VmHWM)
per_round=$(awk -v a="$c1" -v b="$c2" -v t="$ticks" -v n="$ROUNDS" 'BEGIN { printf "%.3f", (b - a) / t / n }')
wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
echo "mfn node, default task (mfn-regime, $(grep -o '"samples":[0-9]*' "$work/s1.log" | head -1 | cut -d: -f2) samples), GOARCH=$(go env GOARCH), $(nproc) cores"
echo "RSS idle:            $((rss_idle / 1024)) MiB ($rss_idle KiB)"
echo "RSS during rounds:   $((rss_max / 1024)) MiB max sampled ($rss_max KiB)"
echo "peak RSS (VmHWM):    $((hwm / 1024)) MiB ($hwm KiB, data generation included)"
echo "CPU idle:            $idle_pct % of one core over ${IDLE} s"
echo "CPU per round:       $per_round s ($ROUNDS rounds in $wall s wall)"
