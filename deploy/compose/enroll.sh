#!/bin/sh
# Enrols the compose nodes and creates a first training job once the
# cluster has a leader. MFN_SERVER and MFN_API_KEY (an admin key) come from
# the environment. Safe to rerun: an enrolment or job that already exists is
# reported and skipped.
set -eu
i=0
until /mfn ctl cluster status >/dev/null 2>&1; do
	i=$((i + 1))
	if [ "$i" -ge 60 ]; then
		echo "cluster not ready after 120 s" >&2
		/mfn ctl cluster status
		exit 1
	fi
	sleep 2
done
/mfn ctl cluster status
for n in n1 n2; do
	/mfn ctl nodes enroll --id "$n" --identity "/etc/mfn/$n" || echo "enrol $n: skipped (already enrolled?)"
done
/mfn ctl jobs create --id "${MFN_JOB_ID:-regime-1}" --task mfn-regime --dim 76 \
	--rule fedavg --f 0 --rounds 20 --min-updates 2 --max-updates 2 \
	--round-deadline 2m || echo "job: skipped (already created?)"
/mfn ctl jobs list
