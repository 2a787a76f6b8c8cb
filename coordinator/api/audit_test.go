package api

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/mfn/mfn/audit"
)

// sampleLog builds a signed sample audit log of n leaves with a
// checkpoint every `every` leaves.
func sampleLog(t *testing.T, n, every int) (*audit.Log, note.Verifier) {
	t.Helper()
	skey, vkey, err := audit.GenerateLogKey("mfn.test/audit", rand.NewChaCha8([32]byte{9}))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := audit.NewLogSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := audit.NewLogVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.BuildSampleLog(audit.SampleConfig{Origin: "mfn.test/audit", Leaves: n, CheckpointEvery: every, Seed: 3}, signer, verifier)
	if err != nil {
		t.Fatal(err)
	}
	return l, verifier
}

func TestAuditEndpoints(t *testing.T) {
	t.Parallel()
	f := seededFake()
	l, verifier := sampleLog(t, 10, 4)
	f.log = l
	srv, _ := newTestAPI(t, listingFake{f}, nil)
	ctx := context.Background()
	cl, _ := NewClient(srv.URL, keyAuditor, srv.Client())

	noteText, err := cl.CheckpointNote(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := audit.ParseCheckpoint(noteText, verifier)
	if err != nil || cp.Size != 10 {
		t.Fatalf("checkpoint %+v %v", cp, err)
	}
	js, err := cl.Checkpoint(ctx)
	if err != nil || js.Note != string(noteText) || js.Size != 10 || js.Root != cp.Root {
		t.Errorf("JSON checkpoint %+v %v", js, err)
	}
	// The bundle is what "mfn audit verify --bundle" accepts.
	raw, err := cl.BundleJSON(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	b, err := audit.ParseBundle(raw)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := audit.VerifyBundle(b, verifier, nil); err != nil || rep == nil {
		t.Errorf("bundle does not verify: %v", err)
	}
	// The consistency proof verifies between two signed roots.
	_, cp4, err := l.Checkpoint(0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cl.Consistency(ctx, cp4.Size, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp4.Size, 10, p.Proof, cp4.Root[:], cp.Root[:]); err != nil {
		t.Errorf("consistency %d→10: %v", cp4.Size, err)
	}
	srvReq := func(path string) *http.Response { return request(t, srv, "GET", path, keyAuditor, "") }
	wantError(t, srvReq("/v1/audit/consistency?from=5&to=3"), 400, CodeBadRequest)
	wantError(t, srvReq("/v1/audit/consistency?from=1&to=11"), 404, CodeNotFound)
	wantError(t, srvReq("/v1/audit/consistency?from=1"), 400, CodeBadRequest)
	wantError(t, srvReq("/v1/audit/bundles/10"), 404, CodeNotFound)
	wantError(t, srvReq("/v1/audit/bundles/-1"), 400, CodeBadRequest)
	wantError(t, srvReq("/v1/audit/leaves?start=3&end=2"), 400, CodeBadRequest)
	wantError(t, srvReq("/v1/audit/leaves?end=11"), 404, CodeNotFound)
	resp := srvReq("/v1/audit/leaves/3")
	leaf, _ := io.ReadAll(resp.Body)
	if want, _ := l.Leaf(3); string(leaf) != string(want) || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("leaf 3 differs")
	}
	if _, err := audit.ParseLeaf(leaf); err != nil {
		t.Errorf("leaf 3 does not parse: %v", err)
	}
}

// TestExportVerifies exports through the API and checks the directory
// with the offline verifier, with the full checkpoint history and with
// only the newest checkpoint, across more than one page of leaves.
func TestExportVerifies(t *testing.T) {
	t.Parallel()
	for _, listing := range []bool{true, false} {
		t.Run("listing="+strconv.FormatBool(listing), func(t *testing.T) {
			t.Parallel()
			// Only one case crosses a page of leaves: file creation
			// dominates the test's time.
			n := 57
			if listing && !testing.Short() {
				n = MaxLeavesPage + 37
			}
			l, verifier := sampleLog(t, n, 20)
			f := newFake("c1", true)
			f.log = l
			var c Coordinator = f
			if listing {
				c = listingFake{f}
			}
			srv, _ := newTestAPI(t, c, nil)
			cl, _ := NewClient(srv.URL, keyAuditor, srv.Client())
			dir := filepath.Join(t.TempDir(), "export")
			rep, err := cl.ExportLog(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			wantCps := 1
			if listing {
				wantCps = l.Checkpoints()
			}
			if rep.Leaves != uint64(n) || rep.Checkpoints != wantCps || rep.Complete != listing {
				t.Errorf("report %+v, want %d leaves, %d checkpoints", rep, n, wantCps)
			}
			vr, err := audit.VerifyLogDir(dir, verifier, nil)
			if err != nil {
				t.Fatalf("exported log does not verify: %v", err)
			}
			if vr.Leaves != uint64(n) || vr.Checkpoints != wantCps {
				t.Errorf("verify report %+v", vr)
			}
			if _, err := cl.ExportLog(context.Background(), dir); !errors.Is(err, fs.ErrExist) {
				t.Errorf("second export into the same dir: %v, want fs.ErrExist", err)
			}
		})
	}
}
