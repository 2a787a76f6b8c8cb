package clustertest_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/coordinator/api"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/internal/clustertest"
)

// Identity and membership guards against real processes: one key speaks
// for one node; cluster status shows every member's addresses and key; joins that would
// harm the cluster are refused (409 for a reused id, 400 for an
// unreachable voter); removing an unknown member is 404; a removed member
// loses Raft trust on the others at once (its handshakes are refused)
// without any restart.
func TestIdentityAndMembershipGuards(t *testing.T) {
	bin := processTest(t)
	t.Parallel()
	ctx := ctxFor(t, 2*time.Minute)
	c, leader := readyCluster(t, ctx, bin)
	nodes := enrolledNodes(t, ctx, c, 1, 91)
	op := c.API(leader, c.OperatorKeys[0])
	admin := c.API(leader, c.AdminKey)
	var apiErr *api.Error

	// One key, one node.
	_, err := op.EnrollNode(ctx, "n-dup", api.PublicKey(nodes[0].Identity.PublicKey()))
	if !errors.As(err, &apiErr) || apiErr.Status != 409 || !strings.Contains(apiErr.Message, "enrolled as node "+nodes[0].ID) {
		t.Fatalf("same key under a second id: %v, want 409 naming %s", err, nodes[0].ID)
	}

	// Every member's addresses and key, on every member, also for those
	// that never led.
	for _, m := range c.Members {
		if err := clustertestPoll(ctx, "every key in "+m.ID+"'s status", func() bool {
			st, err := c.Status(ctx, m)
			if err != nil || len(st.Members) != len(c.Members) {
				return false
			}
			for i, ms := range st.Members {
				want := c.Members[i]
				if ms.ID != want.ID || ms.RaftAddr != want.RaftAddr || ms.QUICAddr != want.QUICAddr || ms.HTTPAddr != want.HTTPAddr ||
					!bytes.Equal(ms.PublicKey, c.CoordKeys[i]) {
					return false
				}
			}
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}

	// Joins that would harm the cluster.
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, 32)).Public().(ed25519.PublicKey)
	victim := c.Others(leader)[0]
	_, err = admin.Join(ctx, api.JoinRequest{ID: victim.ID, RaftAddr: "127.0.0.1:1", PublicKey: api.PublicKey(other)})
	if !errors.As(err, &apiErr) || apiErr.Status != 409 {
		t.Fatalf("join reusing %s's id: %v, want 409", victim.ID, err)
	}
	start := time.Now()
	_, err = admin.Join(ctx, api.JoinRequest{ID: "typo", RaftAddr: "127.0.0.1:1", PublicKey: api.PublicKey(other)})
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || !strings.Contains(apiErr.Message, "cannot reach raft_addr 127.0.0.1:1") {
		t.Fatalf("join at an unreachable address: %v, want 400", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("the unreachable join took %v", d)
	}
	if st, _ := c.Status(ctx, leader); len(st.Members) != len(c.Members) {
		t.Fatalf("members after refused joins: %+v", st.Members)
	}
	if err := admin.RemoveMember(ctx, "nobody"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("remove an unknown member: %v, want 404", err)
	}

	// The removed member's key: accepted on the others' Raft port before
	// its removal, refused right after (no restart).
	vid, err := crypto.LoadIdentity(victim.KeyDir)
	if err != nil {
		t.Fatal(err)
	}
	layer, err := coordinator.NewTLSStreamLayer("127.0.0.1:0", nil, vid.SigningKey, coordinator.NewPeerKeys(c.CoordKeys...), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer layer.Close()
	probe := func(m *clustertest.Member) error {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return layer.Probe(pctx, m.RaftAddr, c.CoordKeys[memberIndex(c, m)])
	}
	if err := probe(leader); err != nil {
		t.Fatalf("the member's key before its removal: %v", err)
	}
	if err := admin.RemoveMember(ctx, victim.ID); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Others(victim) {
		if err := clustertestPoll(ctx, m.ID+" to refuse the removed member's key", func() bool { return probe(m) != nil }); err != nil {
			t.Fatal(err)
		}
	}
}

func memberIndex(c *clustertest.Cluster, m *clustertest.Member) int {
	for i, x := range c.Members {
		if x == m {
			return i
		}
	}
	return -1
}

func clustertestPoll(ctx context.Context, what string, cond func() bool) error {
	return clustertest.Poll(ctx, what, func() (bool, error) { return cond(), nil })
}
