#!/bin/sh
# Static checks of the deploy/ files against the real binary and sources.
#
#   deploy/check.sh            # from the repository root or from deploy/
#   MFN=/path/to/mfn deploy/check.sh   # use an existing binary
#
# Checks: every flag used in compose.yaml, kubernetes/*.yaml (args, ConfigMap
# TOML keys, MFN_* environment variables) is listed by
# "mfn <command> --help"; every metric in grafana/mfn-coordinator.json is
# registered in the Go sources; JSON and YAML files parse; shell scripts
# parse; kubectl kustomize renders kubernetes/ (when kubectl exists).
set -eu
DEPLOY=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$DEPLOY/.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }
ok() { echo "ok:   $*"; }

if [ -z "${MFN:-}" ]; then
	MFN="$TMP/mfn"
	(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$MFN" ./cmd/mfn)
fi

# has_flag "sub command" flag: the flag is in that command's --help.
has_flag() {
	# shellcheck disable=SC2086
	$MFN $1 --help 2>/dev/null | grep -Eq -- "^ +(-[a-zA-Z], )?--$2( |=|\[|$)"
}
check() { # check "sub command" source flag...
	cmd=$1 src=$2
	shift 2
	for f in "$@"; do
		if has_flag "$cmd" "$f"; then :; else bad "$src: --$f is not a flag of 'mfn $cmd'"; fi
		n=$((n + 1))
	done
}
n=0

# compose.yaml: the flags of each service's "command: [...]" (c* coordinators,
# n* nodes); the kits' config files are checked by the provision tests.
awk '/^  [a-z0-9-]+:$/ { svc = $1; sub(":", "", svc) }
     /^ +command: \[/ { n = split($0, w, /[][, ]+/); for (i = 1; i <= n; i++) if (w[i] ~ /^--[a-z]/) { f = w[i]; sub("^--", "", f); print svc, f } }' \
	"$DEPLOY/compose.yaml" > "$TMP/compose.flags"
check coordinator compose.yaml $(awk '$1 ~ /^c[0-9]/ { print $2 }' "$TMP/compose.flags")
check node compose.yaml $(awk '$1 ~ /^n[0-9]/ { print $2 }' "$TMP/compose.flags")
[ -s "$TMP/compose.flags" ] || bad "compose.yaml: no flags found (parser out of date?)"

# Kubernetes: container args, the ConfigMap TOML keys, MFN_* env names.
K=$DEPLOY/kubernetes
flags_in() { grep -Eo -- '^ +- --[a-z][a-z0-9-]*' "$1" | sed 's/.*--//'; }
check coordinator coordinator-statefulset.yaml $(flags_in "$K/coordinator-statefulset.yaml")
check coordinator "configmap.yaml (TOML key)" $(sed -n 's/^    \([a-z][a-z0-9-]*\) = .*/\1/p' "$K/configmap.yaml")
check coordinator "coordinator-statefulset.yaml (env)" \
	$(sed -n 's/^ *- name: MFN_\([A-Z0-9_]*\)$/\1/p' "$K/coordinator-statefulset.yaml" | tr 'A-Z_' 'a-z-')
check node node-deployment.yaml $(flags_in "$K/node-deployment.yaml")

[ "$fail" = 0 ] && ok "$n flag uses match 'mfn <command> --help'"

# Metrics in the dashboard are registered in the Go sources.
m=0
for metric in $(grep -Eo 'mfn_[a-z0-9_]+' "$DEPLOY/grafana/mfn-coordinator.json" | sed -E 's/_(bucket|sum|count)$//' | sort -u); do
	if grep -rqs --include='*.go' --exclude='*_test.go' "\"$metric\"" "$ROOT/coordinator" "$ROOT/node"; then
		m=$((m + 1))
	else
		bad "dashboard metric $metric is not registered in coordinator/ or node/"
	fi
done
ok "$m dashboard metrics are registered in the Go sources"
# and the other way round: registered metrics missing from the dashboard
for metric in $(grep -rhoE --include='*.go' --exclude='*_test.go' '"mfn_[a-z0-9_]+"' "$ROOT/coordinator" "$ROOT/node" | tr -d '"' | sort -u); do
	grep -q "$metric" "$DEPLOY/grafana/mfn-coordinator.json" || echo "note: $metric has no dashboard panel"
done

# Syntax.
if python3 -m json.tool "$DEPLOY/grafana/mfn-coordinator.json" > /dev/null; then ok "dashboard JSON parses"; else bad "dashboard JSON"; fi
if python3 -c 'import yaml' 2> /dev/null; then
	for y in "$DEPLOY/compose.yaml" "$DEPLOY/prometheus.yml" "$K"/*.yaml; do
		python3 -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$y" || bad "YAML: $y"
	done
	ok "YAML files parse (PyYAML)"
	# The ConfigMap's TOML must be accepted by the CLI's --config parser: the
	# flags above cover its keys; here its TOML syntax.
	python3 - "$K/configmap.yaml" <<'PY' || bad "configmap.yaml: coordinator.toml is not valid TOML"
import sys, yaml, tomllib
cm = yaml.safe_load(open(sys.argv[1]))
tomllib.loads(cm["data"]["coordinator.toml"])
PY
else
	echo "skip: PyYAML not installed, YAML not parsed"
fi
sh -n "$DEPLOY/check.sh" || bad "shell syntax: check.sh"
for s in "$ROOT"/scripts/*.sh; do bash -n "$s" || bad "shell syntax: $s"; done
ok "shell scripts parse"
if command -v kubectl > /dev/null; then
	if kubectl kustomize "$K" > "$TMP/k8s.yaml"; then
		ok "kubectl kustomize renders $(grep -c '^kind:' "$TMP/k8s.yaml") objects"
	else
		bad "kubectl kustomize"
	fi
else
	echo "skip: kubectl not installed"
fi

if [ "$fail" != 0 ]; then
	echo "deploy checks FAILED"
	exit 1
fi
echo "deploy checks passed"
