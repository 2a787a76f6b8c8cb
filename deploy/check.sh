#!/bin/sh
# Static checks of the deploy/ files against the real binary and sources.
#
#   deploy/check.sh            # from the repository root or from deploy/
#   MFN=/path/to/mfn deploy/check.sh   # use an existing binary
#
# Checks: every flag used in compose.yaml, kubernetes/*.yaml (args, ConfigMap
# TOML keys, MFN_* environment variables) is listed by
# "mfn <command> --help"; every PromQL expression in
# grafana/mfn-coordinator.json names registered metrics and declared labels
# only; JSON and YAML files parse; shell scripts
# parse; kubectl kustomize renders kubernetes/ (when kubectl exists).
set -eu
DEPLOY=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$DEPLOY/.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0
# DASHBOARD overrides the dashboard checked (to test the check itself).
DASHBOARD=${DASHBOARD:-$DEPLOY/grafana/mfn-coordinator.json}
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

# Every PromQL expression of the dashboard (panel targets, template
# queries) is tied to a real metric: it names at least one mfn_ metric,
# every mfn_ name in it is registered in the Go sources (coordinator/,
# node/; a histogram's _bucket/_sum/_count series count as its name), and
# every label it selects, groups by or shows in a legend is declared by
# some metric's label list in those sources or set by Prometheus (job,
# instance, le, exported_job).
dash_check() { # dash_check DASHBOARD.json: prints FAIL lines, exits 1 on any
python3 - "$1" "$ROOT" <<'PY'
import json, os, re, sys
dash, root = sys.argv[1], sys.argv[2]
names, labels = set(), {"job", "instance", "le", "exported_job", "__name__"}
for top in ("coordinator", "node"):
    for d, _, files in os.walk(os.path.join(root, top)):
        for f in files:
            if f.endswith(".go") and not f.endswith("_test.go"):
                src = open(os.path.join(d, f), encoding="utf-8").read()
                names |= set(re.findall(r'"(mfn_[a-z0-9_]+)"', src))
                for lst in re.findall(r'\[\]string\{([^}]*)\}', src):
                    labels |= set(re.findall(r'"([a-zA-Z_][a-zA-Z0-9_]*)"', lst))
d = json.load(open(dash))
exprs = []  # (where, expr, legend)
def walk(panels):
    for p in panels:
        for t in p.get("targets", []):
            exprs.append((p.get("title", "?"), t.get("expr", ""), t.get("legendFormat", "")))
        walk(p.get("panels", []))
walk(d.get("panels", []))
for v in d.get("templating", {}).get("list", []):
    if v.get("type") == "query":
        exprs.append(("variable " + v["name"], v.get("definition", ""), ""))
fail, used = 0, set()
def bad(where, msg):
    global fail
    fail += 1
    print(f"FAIL: dashboard {where!r}: {msg}")
for where, e, legend in exprs:
    ms = re.findall(r'mfn_[a-z0-9_]+', e)
    if not ms:
        bad(where, f"expression names no mfn_ metric: {e}")
    for m in ms:
        base = re.sub(r'_(bucket|sum|count)$', '', m)
        if m in names:
            used.add(m)
        elif base in names:
            used.add(base)
        else:
            bad(where, f"{m} is not registered in coordinator/ or node/")
    ls = set()
    for sel in re.findall(r'\{([^{}]*)\}', re.sub(r'\{\{[^}]*\}\}', '', e)):
        ls |= set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)', sel))
    for grp in re.findall(r'\b(?:by|without)\s*\(([^)]*)\)', e):
        ls |= {x.strip() for x in grp.split(",") if x.strip()}
    ls |= set(re.findall(r'label_values\([^,]*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)', e))
    ls |= set(re.findall(r'\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}', legend))
    for l in sorted(ls - labels):
        bad(where, f"label {l} is declared by no metric")
print(f"{len(exprs)} expressions use {len(used)} registered metrics")
for m in sorted(names - used):
    print(f"note: {m} has no dashboard panel")
sys.exit(1 if fail else 0)
PY
}
dash_check "$DASHBOARD" > "$TMP/dash.out" || bad "dashboard expressions: $(grep -c '^FAIL' "$TMP/dash.out") problems"
grep -v '^FAIL' "$TMP/dash.out" | grep -v '^[0-9]' || true
grep '^FAIL' "$TMP/dash.out" || ok "dashboard: $(grep '^[0-9]' "$TMP/dash.out")"
# The check itself must fail on a dashboard that references a metric that
# does not exist, a label no metric declares, or no metric at all.
for mut in 's/mfn_job_accuracy{/mfn_job_accuracy_typo{/' 's/max by (job_id) (mfn_job_round{/max by (job_idx) (mfn_job_round{/' \
	's/"expr": "sum(mfn_node_connected{job=~\\"$node_job\\"})"/"expr": "vector(1)"/'; do
	sed "$mut" "$DASHBOARD" > "$TMP/mut.json"
	if cmp -s "$DASHBOARD" "$TMP/mut.json"; then
		bad "dashboard self-test: '$mut' changed nothing"
	elif dash_check "$TMP/mut.json" > /dev/null; then
		bad "dashboard self-test: the check passed a dashboard edited with '$mut'"
	fi
done

# Syntax.
if python3 -m json.tool "$DASHBOARD" > /dev/null; then ok "dashboard JSON parses"; else bad "dashboard JSON"; fi
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
