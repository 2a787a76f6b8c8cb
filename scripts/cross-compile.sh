#!/usr/bin/env bash
# Cross-compiles the static mfn binary for every edge platform MFN ships:
# linux/amd64, linux/arm64, linux/arm (GOARM=7), linux/386, linux/riscv64.
# Fails (exit 1) naming every platform that does not build. The binaries
# go to $OUT (default: a temporary folder removed on exit); their sizes are
# printed.
#
#   scripts/cross-compile.sh                 # check all five
#   OUT=dist/bin scripts/cross-compile.sh    # keep the binaries
#   PLATFORMS="linux/arm/7 linux/386" scripts/cross-compile.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PLATFORMS="${PLATFORMS:-linux/amd64 linux/arm64 linux/arm/7 linux/386 linux/riscv64}"
keep=1
if [ -z "${OUT:-}" ]; then
	OUT=$(mktemp -d)
	keep=0
	trap 'rm -rf "$OUT"' EXIT
fi
mkdir -p "$OUT"

failed=()
for p in $PLATFORMS; do
	IFS=/ read -r os arch arm <<<"$p"
	name="mfn-$os-$arch${arm:+v$arm}"
	start=$(date +%s)
	if CGO_ENABLED=0 GOOS=$os GOARCH=$arch GOARM=${arm:-} \
		GOFLAGS=-mod=readonly go build -trimpath -o "$OUT/$name" ./cmd/mfn; then
		printf '%-24s ok  %6d KiB  %3ds\n' "$p" $(($(stat -c %s "$OUT/$name") / 1024)) $(($(date +%s) - start))
	else
		printf '%-24s FAILED\n' "$p"
		failed+=("$p")
	fi
done
[ "$keep" = 1 ] && echo "binaries in $OUT"
if [ "${#failed[@]}" -gt 0 ]; then
	echo "cross-compile failed for: ${failed[*]}" >&2
	exit 1
fi
