package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/coordinator/api"
)

// exportCosigned exports the audit log and the members' keys into dir;
// while some round result in it is not yet covered by a checkpoint a
// majority of the members cosigned, it removes what it wrote and exports
// again, every 200 ms for at most wait. The last export stays, cosigned
// or not: verify-log then names the round.
func exportCosigned(ctx context.Context, cl *api.Client, dir string, wait time.Duration) (api.ExportReport, error) {
	deadline := time.Now().Add(wait)
	for {
		rep, err := cl.ExportLog(ctx, dir)
		if err != nil {
			return rep, err
		}
		if _, err := cl.ExportMembers(ctx, dir); err != nil {
			return rep, err
		}
		members, err := readKeysFile(filepath.Join(dir, "members.keys"))
		if err != nil {
			return rep, err
		}
		pending, err := audit.UncosignedResults(dir, audit.MemberKeys(members))
		if err != nil || len(pending) == 0 || !time.Now().Before(deadline) {
			return rep, nil // verify-log reports what is wrong
		}
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		for _, sub := range []string{"leaves", "checkpoints"} {
			if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
				return rep, err
			}
		}
	}
}
