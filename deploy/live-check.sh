#!/bin/sh
# Live check on 127.0.0.1 (no Docker or Kubernetes needed): runs three
# coordinators with the settings of kubernetes/configmap.yaml and the
# per-member environment of kubernetes/coordinator-statefulset.yaml (with
# loopback addresses), enrols two nodes and creates a job with
# compose/enroll.sh, runs the nodes with the flags of compose.yaml, waits
# for a closed round, then sends SIGTERM to the leader and checks that it
# exits within the grace period and that another member leads.
#
#   deploy/live-check.sh /path/to/mfn
set -eu
MFN=${1:?usage: live-check.sh /path/to/mfn}
DEPLOY=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d)
PIDS=
cleanup() {
	for p in $PIDS; do kill -TERM "$p" 2> /dev/null || true; done
	for p in $PIDS; do wait "$p" 2> /dev/null || true; done
	rm -rf "$W"
}
trap cleanup EXIT
base=$((20000 + $$ % 20000))
admin=live-check-admin-key-0123456789

"$MFN" audit keygen --name mfn.example/k8s --out "$W/logkey" > /dev/null 2>&1
for i in 0 1 2; do
	"$MFN" keygen --role coordinator --out "$W/mfn-coordinator-$i" > /dev/null 2>&1
	echo "mfn-coordinator-$i $(cat "$W/mfn-coordinator-$i/signing.pub")"
done > "$W/peers.txt"
echo "origin mfn.example/k8s" > "$W/cluster.txt"
for i in 0 1 2; do
	echo "coordinator mfn-coordinator-$i 127.0.0.1:$((base + 100 + i)) $(cat "$W/mfn-coordinator-$i/signing.pub") $(cat "$W/mfn-coordinator-$i/age.pub")"
done >> "$W/cluster.txt"

# coordinator.toml from the ConfigMap, paths and addresses made local.
python3 - "$DEPLOY/kubernetes/configmap.yaml" "$W" "$base" <<'PY'
import sys
src, w, base = open(sys.argv[1]).read(), sys.argv[2], int(sys.argv[3])
toml = "\n".join(l[4:] for l in src.split("coordinator.toml: |\n", 1)[1].splitlines())
toml = toml.replace("/run/mfn/keys/logkey/", w + "/logkey/").replace("/etc/mfn/peers/", w + "/")
toml = toml.replace("eval-per-regime = 50", "eval-per-regime = 2")
for j in range(3):
    toml = toml.replace(f"mfn-coordinator-{j}.mfn-coordinator.mfn.svc.cluster.local:7000", f"127.0.0.1:{base + j}")
for i in range(3):
    t = toml.replace("/var/lib/mfn/data", f"{w}/data{i}")
    t = t.replace("0.0.0.0:7000", f"127.0.0.1:{base + i}").replace("0.0.0.0:4431", f"127.0.0.1:{base + 100 + i}")
    t = t.replace("0.0.0.0:8081", f"127.0.0.1:{base + 200 + i}")
    open(f"{w}/c{i}.toml", "w").write(t)
PY

start_member() {
	i=$1
	MFN_ID=mfn-coordinator-$i MFN_IDENTITY=$W/mfn-coordinator-$i MFN_API_KEYS="admin:$admin" \
		MFN_RAFT_ADVERTISE=127.0.0.1:$((base + i)) MFN_QUIC_ADVERTISE=127.0.0.1:$((base + 100 + i)) \
		MFN_HTTP_ADVERTISE=127.0.0.1:$((base + 200 + i)) \
		"$MFN" coordinator --config "$W/c$i.toml" 2> "$W/c$i.log" &
	eval "pid$i=$!"
	PIDS="$PIDS $!"
}
for i in 0 1 2; do start_member $i; done

# readiness of every member (deadline 60 s)
for i in 0 1 2; do
	t=0
	until curl -sf "http://127.0.0.1:$((base + 200 + i))/readyz" > /dev/null; do
		t=$((t + 1))
		[ $t -le 120 ] || { echo "member $i not ready"; tail -5 "$W/c$i.log"; exit 1; }
		sleep 0.5
	done
done
echo "live: 3 members ready"

mkdir -p "$W/etc"
for n in n1 n2; do "$MFN" keygen --role node --out "$W/etc/$n" > /dev/null 2>&1; done
sed -e "s#/mfn #$MFN #g" -e "s#/etc/mfn/#$W/etc/#g" "$DEPLOY/compose/enroll.sh" > "$W/enroll.sh"
MFN_SERVER=http://127.0.0.1:$((base + 201)) MFN_API_KEY=$admin sh "$W/enroll.sh" > "$W/enroll.log" 2>&1 ||
	{ cat "$W/enroll.log"; exit 1; }
echo "live: nodes enrolled and job created through a follower or the leader"

k=1
for n in n1 n2; do
	"$MFN" node --id=$n --identity="$W/etc/$n" --cluster="$W/cluster.txt" --state-dir="$W/state-$n" \
		--samples=40 --regime-mix=4,1,1,1 --data-seed=$k --http-addr=127.0.0.1:$((base + 300 + k)) 2> "$W/$n.log" &
	PIDS="$PIDS $!"
	k=$((k + 1))
done

closed() {
	for i in 0 1 2; do
		curl -s "http://127.0.0.1:$((base + 200 + i))/metrics" 2> /dev/null |
			sed -n 's/^mfn_coordinator_rounds_total{outcome="closed"} //p'
	done | sort -n | tail -1
}
t=0
until [ "$(closed)" ] && [ "$(closed)" -ge 1 ]; do
	t=$((t + 1))
	[ $t -le 240 ] || { echo "no round closed in 120 s"; tail -5 "$W/n1.log"; exit 1; }
	sleep 0.5
done
echo "live: $(closed) round(s) closed"
curl -sf "http://127.0.0.1:$((base + 301))/metrics" | grep -q '^mfn_node_rounds_participated_total' ||
	{ echo "node metrics missing"; exit 1; }

leader=$(curl -s "http://127.0.0.1:$((base + 200))/readyz" | sed -n 's/.*"leader":"mfn-coordinator-\([0-9]\)".*/\1/p')
[ -n "$leader" ] || { echo "no leader"; exit 1; }
eval "lp=\$pid$leader"
kill -TERM "$lp"
t=0
while kill -0 "$lp" 2> /dev/null; do
	t=$((t + 1))
	[ $t -le 90 ] || { echo "leader did not exit within 45 s of SIGTERM"; exit 1; }
	sleep 0.5
done
other=$(((leader + 1) % 3))
t=0
until curl -s "http://127.0.0.1:$((base + 200 + other))/readyz" | grep -q '"leader":"mfn-coordinator-[0-9]"' &&
	! curl -s "http://127.0.0.1:$((base + 200 + other))/readyz" | grep -q "\"leader\":\"mfn-coordinator-$leader\""; do
	t=$((t + 1))
	[ $t -le 60 ] || { echo "no new leader after SIGTERM"; exit 1; }
	sleep 0.5
done
echo "live: leader mfn-coordinator-$leader exited on SIGTERM; new leader: $(curl -s "http://127.0.0.1:$((base + 200 + other))/readyz")"
