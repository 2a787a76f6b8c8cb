package api

import (
	"context"
	"crypto/ed25519"

	"github.com/mfn/mfn/audit"
)

// ExportMembers writes the cosigning keys of the cluster's members, as the
// member at the client's server lists them (GET /v1/cluster, reader), to
// dir/members.keys and marks dir as export format 2, so that "mfn audit
// verify-log DIR" checks the result leaves' cosignatures against them. It
// returns how many keys it wrote. An auditor who holds the members' keys
// from elsewhere (the cluster's peer key list) passes them to verify-log
// with --member-keys, which takes precedence over the file.
func (c *Client) ExportMembers(ctx context.Context, dir string) (int, error) {
	st, err := c.Cluster(ctx)
	if err != nil {
		return 0, err
	}
	keys := audit.MemberKeys{}
	for _, m := range st.Members {
		if len(m.PublicKey) == ed25519.PublicKeySize {
			keys[m.ID] = ed25519.PublicKey(m.PublicKey)
		}
	}
	return len(keys), audit.WriteExportMembers(dir, keys)
}
