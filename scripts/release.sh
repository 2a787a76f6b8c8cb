#!/usr/bin/env bash
# Builds the release archives of mfn for the five Linux platforms, with
# SHA-256 sums and a CycloneDX SBOM per binary, reproducibly: the same
# commit gives the same bytes on any machine with the same Go version.
#
#   scripts/release.sh                 # dist/release/ from the committed HEAD
#   scripts/release.sh --check         # build twice, in two folders, and compare
#   VERSION=v1.2.0 scripts/release.sh  # name the version (default: git describe)
#   PLATFORMS="linux/arm64 linux/arm/7" scripts/release.sh
#
# Reproducibility: the sources are a fresh clone of the commit (never the
# work tree: uncommitted changes are not released), built with
# CGO_ENABLED=0, -trimpath, -buildvcs (revision and commit time from git),
# -buildid= and the commit time as the build date; archives have sorted
# entries, owner 0 and the commit time as every mtime; gzip without a name
# or time; the SBOM without serial number or timestamp
# (cyclonedx-gomod, pinned below, reads the module list Go embeds in the
# binary).
set -euo pipefail
cd "$(dirname "$0")/.."

PLATFORMS="${PLATFORMS:-linux/amd64 linux/arm64 linux/arm/7 linux/386 linux/riscv64}"
OUT="${OUT:-dist/release}"
SBOM_TOOL="github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0"
REV=$(git rev-parse HEAD)
VERSION="${VERSION:-$(git describe --tags --always "$REV")}"
EPOCH=$(git log -1 --format=%ct "$REV")
DATE=$(TZ=UTC git log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd "$REV")
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
	echo "note: the work tree has uncommitted changes; releasing the commit $REV without them" >&2
fi

# build DEST: every archive of the commit into DEST.
build() {
	local dest=$1 work src
	work=$(mktemp -d)
	src="$work/mfn-src"
	git clone --quiet --no-checkout . "$src"
	git -C "$src" checkout --quiet "$REV"
	mkdir -p "$dest"
	for p in $PLATFORMS; do
		local os arch arm name stage
		IFS=/ read -r os arch arm <<<"$p"
		name="mfn_${VERSION}_${os}_${arch}${arm:+v$arm}"
		stage="$work/$name"
		mkdir -p "$stage"
		(cd "$src" && CGO_ENABLED=0 GOOS=$os GOARCH=$arch GOARM=${arm:-} GOFLAGS=-mod=readonly \
			go build -trimpath -buildvcs=true \
			-ldflags "-s -w -buildid= -X main.version=$VERSION -X main.buildDate=$DATE" \
			-o "$stage/mfn" ./cmd/mfn)
		cp "$src/README.md" "$src/docs/TUTORIAL.md" "$stage/"
		GOFLAGS= go run "$SBOM_TOOL" bin -json -noserial -notimestamp -version "$VERSION" \
			-output "$stage/mfn.cdx.json" "$stage/mfn" 2>/dev/null
		cp "$stage/mfn.cdx.json" "$dest/$name.cdx.json"
		tar --sort=name --mtime="@$EPOCH" --owner=0 --group=0 --numeric-owner \
			--mode='u+rwX,go+rX,go-w' --format=gnu -C "$work" -cf - "$name" | gzip -n -9 >"$dest/$name.tar.gz"
		echo "built $dest/$name.tar.gz"
	done
	(cd "$dest" && sha256sum -- *.tar.gz *.cdx.json >SHA256SUMS)
	rm -rf "$work"
}

if [ "${1:-}" = "--check" ]; then
	a=$(mktemp -d) b=$(mktemp -d)
	trap 'rm -rf "$a" "$b"' EXIT
	build "$a/one"
	build "$b/two"
	if cmp "$a/one/SHA256SUMS" "$b/two/SHA256SUMS" && diff -r "$a/one" "$b/two" >/dev/null; then
		echo "reproducible: two builds of $REV are identical"
		cat "$a/one/SHA256SUMS"
	else
		echo "NOT reproducible: two builds of $REV differ" >&2
		diff "$a/one/SHA256SUMS" "$b/two/SHA256SUMS" >&2 || true
		exit 1
	fi
	exit 0
fi

rm -rf "$OUT"
build "$OUT"
(cd "$OUT" && sha256sum -c --quiet SHA256SUMS)
echo "release $VERSION ($REV) in $OUT:"
cat "$OUT/SHA256SUMS"
