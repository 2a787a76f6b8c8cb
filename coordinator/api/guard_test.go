package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mfn/mfn/coordinator"
)

// guardServer serves the API of a real single-member coordinator.
func guardServer(t *testing.T) (*httptest.Server, context.Context) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := newRealCoordinator(t, reg)
	h, err := New(Config{Coordinator: c, Keys: testKeys(t), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return srv, ctx
}

// One key, one node: the API answers 409 naming the node that holds the
// key, for a live key under a new id and for a revoked key.
func TestEnrollKeyConflictAPI(t *testing.T) {
	t.Parallel()
	srv, ctx := guardServer(t)
	op, _ := NewClient(srv.URL, keyOperator, srv.Client())
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)).Public().(ed25519.PublicKey)
	if _, err := op.EnrollNode(ctx, "n1", PublicKey(pub)); err != nil {
		t.Fatal(err)
	}
	var apiErr *Error
	if _, err := op.EnrollNode(ctx, "n1dup", PublicKey(pub)); !errors.As(err, &apiErr) || apiErr.Status != 409 ||
		apiErr.Code != CodeConflict || !strings.Contains(apiErr.Message, "enrolled as node n1") {
		t.Fatalf("same key under a second id: %v, want 409 naming n1", err)
	}
	if _, err := op.RevokeNode(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if _, err := op.EnrollNode(ctx, "n1new", PublicKey(pub)); !errors.As(err, &apiErr) || apiErr.Status != 409 ||
		!strings.Contains(apiErr.Message, "node n1, which is revoked") {
		t.Fatalf("revoked key under a new id: %v, want 409 naming n1 as revoked", err)
	}
}

// Job specs that could never run are 400s naming the field and limit: a
// dim whose updates exceed the per-update byte limit, a bare-number
// duration, a deadline below 1 s.
func TestJobSpecLimitsAPI(t *testing.T) {
	t.Parallel()
	srv, _ := guardServer(t)
	const base = `"id":"j1","task":"t","rule":{"name":"fedavg"},"rounds":1,"min_updates":1,"max_updates":1`
	cases := []struct {
		body, code, want string
	}{
		{`{` + base + `,"dim":40000000,"round_deadline":"30s"}`, CodeInvalid, "above this cluster's per-update limit of 33554432 bytes"},
		{`{` + base + `,"dim":4,"round_deadline":60}`, CodeBadRequest, `field "round_deadline"`},
		{`{` + base + `,"dim":4,"round_deadline":"500ms"}`, CodeInvalid, "round_deadline 500ms is below the minimum 1s"},
	}
	for _, c := range cases {
		resp := request(t, srv, "POST", "/v1/jobs", keyOperator, c.body)
		e := wantError(t, resp, 400, c.code)
		if !strings.Contains(e.Message, c.want) {
			t.Errorf("%s: message %q, want it to contain %q", c.body, e.Message, c.want)
		}
	}
}

// Cluster changes that would harm it: a join reusing a member's id with
// other addresses is 409, deleting an unknown member is 404.
func TestClusterJoinConflictsAPI(t *testing.T) {
	t.Parallel()
	srv, ctx := guardServer(t)
	admin, _ := NewClient(srv.URL, keyAdmin, srv.Client())
	st, err := admin.Cluster(ctx)
	if err != nil || len(st.Members) != 1 {
		t.Fatalf("cluster %+v %v", st, err)
	}
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32)).Public().(ed25519.PublicKey)
	var apiErr *Error
	_, err = admin.Join(ctx, JoinRequest{ID: "c0", RaftAddr: "10.9.9.9:7001", PublicKey: PublicKey(pub)})
	if !errors.As(err, &apiErr) || apiErr.Status != 409 || !strings.Contains(apiErr.Message, "c0") {
		t.Fatalf("join with the leader's id and another address: %v, want 409", err)
	}
	if err := admin.RemoveMember(ctx, "nobody"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("remove an unknown member: %v, want 404", err)
	}
}

// Jobs can be archived (models freed) and deleted through the API.
func TestJobRemovalAPI(t *testing.T) {
	t.Parallel()
	srv, ctx := guardServer(t)
	op, _ := NewClient(srv.URL, keyOperator, srv.Client())
	for _, id := range []string{"a", "d"} {
		spec := coordinator.JobSpec{ID: id, Task: "t", Dim: 4, Rule: coordinator.RuleSpec{Name: "fedavg"},
			Rounds: 2, MinUpdates: 1, MaxUpdates: 2, RoundDeadline: coordinator.Duration(time.Minute)}
		if _, err := op.CreateJob(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	j, err := op.ArchiveJob(ctx, "a", "")
	if err != nil || j.State != coordinator.JobArchived || j.Reason != "archived by operator" {
		t.Fatalf("archive %+v %v", j, err)
	}
	var apiErr *Error
	if m, err := op.Model(ctx, "a", "0"); err != nil || !m.Pruned {
		t.Fatalf("archived job's model: %+v %v, want pruned", m, err)
	}
	if err := op.DeleteJob(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if _, err := op.Job(ctx, "d"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("deleted job: %v, want 404", err)
	}
	if err := op.DeleteJob(ctx, "never"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("delete an unknown job: %v, want 404", err)
	}
	spec := coordinator.JobSpec{ID: "d", Task: "t", Dim: 4, Rule: coordinator.RuleSpec{Name: "fedavg"},
		Rounds: 2, MinUpdates: 1, MaxUpdates: 2, RoundDeadline: coordinator.Duration(time.Minute)}
	if _, err := op.CreateJob(ctx, spec); !errors.As(err, &apiErr) || apiErr.Status != 409 {
		t.Fatalf("re-create a deleted id: %v, want 409", err)
	}
}
