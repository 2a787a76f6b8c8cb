#!/bin/sh
# One-time key generation for compose.yaml. Runs in the "tools" image as
# user 65532 with the "keys" volume at /etc/mfn. Idempotent: an existing
# /etc/mfn/.done means the keys were made before and nothing is touched
# (mfn keygen refuses to overwrite anyway).
set -eu
K=/etc/mfn
ORIGIN="${MFN_ORIGIN:-mfn.example/compose}"
if [ -f "$K/.done" ]; then
	echo "keys already present in $K"
	exit 0
fi
umask 077
/mfn audit keygen --name "$ORIGIN" --out "$K/logkey"
: > "$K/peers.txt"
echo "origin $ORIGIN" > "$K/cluster.txt"
for c in c1 c2 c3; do
	/mfn keygen --role coordinator --out "$K/$c"
	echo "$c $(cat "$K/$c/signing.pub")" >> "$K/peers.txt"
	# coordinator ID HOST:PORT mfn-ed25519:KEY age1RECIPIENT
	echo "coordinator $c $c:4431 $(cat "$K/$c/signing.pub") $(cat "$K/$c/age.pub")" >> "$K/cluster.txt"
done
for n in n1 n2; do
	/mfn keygen --role node --out "$K/$n"
done
chmod 0644 "$K/peers.txt" "$K/cluster.txt"
touch "$K/.done"
echo "--- peers.txt"; cat "$K/peers.txt"
echo "--- cluster.txt"; cat "$K/cluster.txt"
