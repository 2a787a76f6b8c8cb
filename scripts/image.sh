#!/usr/bin/env bash
# Builds the mfn container image without pulling anything: a static binary
# built here (CGO_ENABLED=0, -trimpath, version stamped) is copied with CA
# certificates, a passwd entry for the non-root user "mfn" (65532) and the
# folders it needs into a FROM scratch image (deploy/Dockerfile, target
# "runtime"). This is the way Prometheus and etcd ship prebuilt binaries.
#
#   scripts/image.sh                     # builds mfn:local for this machine's arch
#   IMAGE=mfn:v1.0 GOARCH=arm64 scripts/image.sh
#
# Environment: IMAGE (default mfn:local), GOARCH (default the host's),
# VERSION (default: git describe), CONTEXT (default dist/image; recreated).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-mfn:local}"
GOARCH="${GOARCH:-$(go env GOARCH)}"
CONTEXT="${CONTEXT:-dist/image}"
VERSION="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}"
BUILD_DATE="$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

rm -rf "$CONTEXT"
root="$CONTEXT/rootfs"
mkdir -p "$root/etc/ssl/certs" "$root/var/lib/mfn" "$root/kit" "$root/tmp"

echo "== building mfn $VERSION for linux/$GOARCH"
CGO_ENABLED=0 GOOS=linux GOARCH="$GOARCH" GOFLAGS=-mod=readonly \
	go build -trimpath -buildvcs=false \
	-ldflags "-s -w -buildid= -X main.version=$VERSION -X main.buildDate=$BUILD_DATE" \
	-o "$root/mfn" ./cmd/mfn

# The image has no shell and no package manager: the files a non-root
# static binary needs are written here.
cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
mfn:x:65532:65532:mfn:/var/lib/mfn:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
mfn:x:65532:
nobody:x:65534:
GROUP
if [ -f "$CA_BUNDLE" ]; then
	cp "$CA_BUNDLE" "$root/etc/ssl/certs/ca-certificates.crt"
else
	echo "warning: no CA bundle at $CA_BUNDLE; the image trusts no public CA" >&2
	: >"$root/etc/ssl/certs/ca-certificates.crt"
fi
chmod 0755 "$root/mfn"
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/ssl/certs/ca-certificates.crt"
chmod 0700 "$root/var/lib/mfn"
chmod 1777 "$root/tmp"

echo "== building image $IMAGE"
DOCKER_BUILDKIT=0 docker build --quiet --target runtime \
	--label "org.opencontainers.image.version=$VERSION" \
	--label "org.opencontainers.image.source=https://github.com/mfn/mfn" \
	-f deploy/Dockerfile -t "$IMAGE" "$CONTEXT"
docker run --rm "$IMAGE" version
