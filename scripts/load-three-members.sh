#!/usr/bin/env bash
# Runs "mfn load" against three real "mfn coordinator" processes on
# loopback (fresh keys and data, Raft over mutual TLS, bbolt, plain-HTTP
# API), and reports each member's peak memory sampled from /proc every
# 0.5 s: VmRSS (which counts the pages of the memory-mapped Raft log) and
# RssAnon (the process's own memory). Linux only.
#
#   scripts/load-three-members.sh --nodes 8 --dim 25000000 --rounds 2
#   MEMBER_FLAGS="--max-update-bytes 200000000 --raft-multiplier 3" \
#     GOMEMLIMIT=1100MiB scripts/load-three-members.sh --nodes 8 --dim 25000000 --rounds 2
#
# Arguments go to "mfn load" after --cluster, --server and --api-key.
# MEMBER_FLAGS go to each "mfn coordinator" (default: --max-update-bytes
# 200000000, room for 100 MB updates); GOMEMLIMIT, when set, applies to
# the members only. KEEP=1 keeps the work directory (logs, report).
set -euo pipefail
cd "$(dirname "$0")/.."
MEMBER_FLAGS="${MEMBER_FLAGS:---max-update-bytes 200000000}"
MEMBER_GOMEMLIMIT="${GOMEMLIMIT:-}"
unset GOMEMLIMIT
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ "${KEEP:-0}" = 1 ]; then echo "work directory: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

CGO_ENABLED=0 go build -trimpath -o "$work/mfn" ./cmd/mfn
MFN="$work/mfn"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cd "$work"
"$MFN" audit keygen --name mfn.test/load3 --out logkey >/dev/null
key="load-admin-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '[[keys]]\nname = "admin"\nrole = "admin"\nkey  = "%s"\n' "$key" >api-keys.toml
chmod 600 api-keys.toml
echo "origin mfn.test/load3" >cluster.txt
: >peers.txt
declare -A raft quic http
boot=""
for n in 1 2 3; do
	"$MFN" keygen --role coordinator --out "keys/c$n" >/dev/null
	raft[$n]=$(port) quic[$n]=$(port) http[$n]=$(port)
	echo "c$n $(cat "keys/c$n/signing.pub")" >>peers.txt
	echo "coordinator c$n 127.0.0.1:${quic[$n]} $(cat "keys/c$n/signing.pub") $(cat "keys/c$n/age.pub")" >>cluster.txt
	boot="${boot:+$boot,}c$n=127.0.0.1:${raft[$n]}"
done
for n in 1 2 3; do
	# shellcheck disable=SC2086
	GOMEMLIMIT="$MEMBER_GOMEMLIMIT" "$MFN" coordinator --id "c$n" --data-dir "data/c$n" --identity "keys/c$n" \
		--log-key logkey/log.skey --peer-keys peers.txt --api-keys api-keys.toml \
		--raft-addr "127.0.0.1:${raft[$n]}" --quic-addr "127.0.0.1:${quic[$n]}" --http-addr "127.0.0.1:${http[$n]}" \
		--http-insecure --bootstrap "$boot" $MEMBER_FLAGS >"c$n.log" 2>&1 &
	pids+=($!)
done
servers="http://127.0.0.1:${http[1]},http://127.0.0.1:${http[2]},http://127.0.0.1:${http[3]}"
for _ in $(seq 150); do
	curl -sf "http://127.0.0.1:${http[1]}/readyz" | grep -q '"leader":"c' && break
	sleep 0.2
done
members=("${pids[@]}")
(
	while true; do
		line=""
		for p in "${members[@]}"; do
			line="$line $(awk '$1 == "VmRSS:" { r = $2 } $1 == "RssAnon:" { a = $2 } END { printf "%d/%d", r, a }' "/proc/$p/status" 2>/dev/null || echo 0/0)"
		done
		echo "$line"
		sleep 0.5
	done
) >rss.log &
pids+=($!)
"$MFN" load --cluster cluster.txt --server "$servers" --api-key "$key" "$@"
awk '{ for (i = 1; i <= NF; i++) { split($i, v, "/"); if (v[1] > r[i]) r[i] = v[1]; if (v[2] > a[i]) a[i] = v[2] } }
	END { for (i = 1; i <= 3; i++) printf "member c%d: peak VmRSS %.2f GiB, peak RssAnon %.2f GiB\n", i, r[i] / 1048576, a[i] / 1048576 }' rss.log
