package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/coordinator/api"
	"github.com/mfn/mfn/crypto"
)

// ctlServer starts a single-member coordinator on raft's in-memory
// transport behind the HTTP API, with one key per role.
func ctlServer(t *testing.T) string {
	t.Helper()
	skey, vkey, err := audit.GenerateLogKey("mfn.test/ctl", rand.NewChaCha8([32]byte{4}))
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := audit.NewLogSigner(skey)
	verifier, _ := audit.NewLogVerifier(vkey)
	addr, trans := raft.NewInmemTransport("raft-0")
	rc := raft.DefaultConfig()
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = 100*time.Millisecond, 100*time.Millisecond, 50*time.Millisecond
	reg := prometheus.NewRegistry()
	c, err := coordinator.New(coordinator.Config{
		ID: "c0", Origin: "mfn.test/ctl", RaftAddr: string(addr), Storage: coordinator.InmemStorage(), Transport: trans,
		Raft: rc, LogVerifier: verifier, LogSigner: signer, Registry: reg, Tick: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	if err := c.Bootstrap([]raft.Server{{ID: "c0", Address: addr}}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !c.IsLeader(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no leader within 10 s")
		}
	}
	keys, err := api.ParseKeyList("reader:" + ctlReader + ",operator:" + ctlOperator + ",auditor:" + ctlAuditor)
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{Coordinator: c, Keys: keys, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

const (
	ctlReader   = "reader-key-0123456789"
	ctlOperator = "operator-key-0123456789"
	ctlAuditor  = "auditor-key-0123456789"
)

// runCtl runs "mfn ctl args…" in process and returns the exit code and
// both streams.
func runCtl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"ctl"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCtlAgainstCoordinator(t *testing.T) {
	url := ctlServer(t)
	as := func(key string) []string { return []string{"--server", url, "--api-key", key} }
	must := func(key string, args ...string) string {
		t.Helper()
		code, out, errs := runCtl(t, append(args, as(key)...)...)
		if code != exitOK {
			t.Fatalf("mfn ctl %v: exit %d: %s", args, code, errs)
		}
		return out
	}
	fail := func(key string, wantCode int, wantErr string, args ...string) {
		t.Helper()
		code, _, errs := runCtl(t, append(args, as(key)...)...)
		if code != wantCode || !strings.Contains(errs, wantErr) {
			t.Errorf("mfn ctl %v: exit %d, stderr %q; want exit %d and %q", args, code, errs, wantCode, wantErr)
		}
	}

	if out := must(ctlReader, "cluster", "status"); !strings.Contains(out, "leader c0") || !strings.Contains(out, "raft-0") {
		t.Errorf("cluster status:\n%s", out)
	}
	pub := crypto.FormatPublicKey(make([]byte, 32))
	fail(ctlReader, exitFailure, "server answered 403 forbidden", "nodes", "enroll", "--id", "n1", "--public-key", pub)
	fail("wrong-key-0123456789", exitFailure, "server answered 401 unauthorized", "nodes", "list")
	if out := must(ctlOperator, "nodes", "enroll", "--id", "n1", "--public-key", pub); !strings.Contains(out, "enrolled node n1 "+pub) {
		t.Errorf("enroll: %s", out)
	}
	var nodes api.NodeList
	if err := json.Unmarshal([]byte(must(ctlReader, "nodes", "list", "--json")), &nodes); err != nil || len(nodes.Nodes) != 1 || nodes.Nodes[0].ID != "n1" {
		t.Errorf("nodes list --json: %+v %v", nodes, err)
	}
	if out := must(ctlOperator, "nodes", "revoke", "n1"); !strings.Contains(out, "revoked node n1") {
		t.Errorf("revoke: %s", out)
	}
	if out := must(ctlReader, "nodes", "list"); !strings.Contains(out, "n1") || !strings.Contains(out, "revoked") {
		t.Errorf("nodes list:\n%s", out)
	}

	out := must(ctlOperator, "jobs", "create", "--id", "j1", "--dim", "3", "--rule", "krum", "--f", "1",
		"--rounds", "2", "--min-updates", "3", "--max-updates", "5", "--round-deadline", "30s")
	if !strings.Contains(out, "job j1: running") || !strings.Contains(out, "rule krum (f=1)") {
		t.Errorf("jobs create:\n%s", out)
	}
	fail(ctlOperator, exitFailure, "server answered 409 conflict", "jobs", "create", "--id", "j1", "--dim", "4", "--round-deadline", "30s")
	var j coordinator.Job
	if err := json.Unmarshal([]byte(must(ctlReader, "jobs", "get", "j1", "--json")), &j); err != nil || j.Spec.Dim != 3 || j.Spec.MaxUpdates != 5 {
		t.Errorf("jobs get --json: %+v %v", j, err)
	}
	fail(ctlReader, exitFailure, "404 not_found", "jobs", "get", "nope")
	if out := must(ctlReader, "jobs", "list"); !strings.Contains(out, "j1") || !strings.Contains(out, "0/2") {
		t.Errorf("jobs list:\n%s", out)
	}
	if out := must(ctlReader, "rounds", "list", "j1"); !strings.HasPrefix(out, "ROUND") {
		t.Errorf("rounds list:\n%s", out)
	}

	dir := t.TempDir()
	f64 := filepath.Join(dir, "m.f64")
	must(ctlReader, "models", "get", "j1", "0", "--out", f64)
	if b, err := os.ReadFile(f64); err != nil || !bytes.Equal(b, make([]byte, 24)) {
		t.Errorf("model file %x %v, want 24 zero bytes", b, err)
	}
	upd := filepath.Join(dir, "m.upd")
	must(ctlReader, "models", "get", "j1", "latest", "--out", upd, "--format", "update")
	if b, err := os.ReadFile(upd); err != nil {
		t.Error(err)
	} else if p, err := crypto.DecodeUpdate(b, 0); err != nil || len(p) != 3 {
		t.Errorf("update file: %v %v", p, err)
	}
	if out := must(ctlReader, "models", "get", "j1", "latest"); !strings.Contains(out, "model v0") || !strings.Contains(out, coordinator.ModelHash(make(coordinator.Params, 3)).String()) {
		t.Errorf("models get:\n%s", out)
	}

	// No update yet, so no checkpoint: a 404 with the request id.
	fail(ctlReader, exitFailure, "403 forbidden", "audit", "checkpoint")
	fail(ctlAuditor, exitFailure, "404 not_found", "audit", "checkpoint")
	fail(ctlAuditor, exitFailure, "request id", "audit", "bundle", "0")

	if out := must(ctlOperator, "jobs", "stop", "j1", "--reason", "done"); !strings.Contains(out, "job j1: stopped (done)") {
		t.Errorf("jobs stop: %s", out)
	}
	fail(ctlReader, exitFailure, "403 forbidden", "jobs", "archive", "j1")
	if out := must(ctlOperator, "jobs", "archive", "j1"); !strings.Contains(out, "job j1: archived, models freed") {
		t.Errorf("jobs archive: %s", out)
	}
	if out := must(ctlOperator, "jobs", "delete", "j1"); !strings.Contains(out, "job j1 deleted") {
		t.Errorf("jobs delete: %s", out)
	}
	fail(ctlReader, exitFailure, "404 not_found", "jobs", "get", "j1")
	// Deleting twice is idempotent; a job that never existed is a 404.
	must(ctlOperator, "jobs", "delete", "j1")
	fail(ctlOperator, exitFailure, "404 not_found", "jobs", "delete", "never-created")
}

// TestCtlExitCodes checks the exit codes the testscripts cannot see.
func TestCtlExitCodes(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"cluster", "status"}, exitUsage},
		{[]string{"jobs", "create", "--server", "127.0.0.1:1"}, exitUsage},
		{[]string{"rounds", "get", "j", "x", "--server", "127.0.0.1:1"}, exitUsage},
		{[]string{"cluster", "status", "--server", "127.0.0.1:1", "--timeout", "5s"}, exitFailure},
		{[]string{"audit", "export", "--out", t.TempDir(), "--server", "127.0.0.1:1", "--timeout", "5s"}, exitFailure},
	} {
		if code, _, errs := runCtl(t, c.args...); code != c.code {
			t.Errorf("mfn ctl %v: exit %d (%s), want %d", c.args, code, errs, c.code)
		}
	}
}
