package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/coordinator/api"
	"github.com/mfn/mfn/crypto"
)

// TestCtlRoundsFollowsPages: "mfn ctl rounds list" asks for the next page
// while the server says more rounds follow, and prints them all.
func TestCtlRoundsFollowsPages(t *testing.T) {
	t.Parallel()
	const total = 2*api.MaxRoundsPage + 5
	var mu sync.Mutex
	var afters []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/jobs/j1/rounds" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		afters = append(afters, r.URL.Query().Get("after"))
		mu.Unlock()
		after, _ := strconv.Atoi(r.URL.Query().Get("after"))
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		var l api.RoundList
		for n := after + 1; n <= total && len(l.Rounds) < limit; n++ {
			l.Rounds = append(l.Rounds, coordinator.Round{Job: "j1", Number: uint64(n), State: coordinator.RoundClosed})
		}
		if last := after + len(l.Rounds); last < total {
			next := uint64(last)
			l.NextAfter = &next
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(l)
	}))
	defer srv.Close()
	code, out, errOut := runCtl(t, "--server", srv.URL, "--api-key", ctlReader, "rounds", "list", "j1", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var l api.RoundList
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Rounds) != total || l.Rounds[total-1].Number != total {
		t.Fatalf("printed %d rounds, want %d", len(l.Rounds), total)
	}
	if got := strings.Join(afters, ","); got != ",1000,2000" {
		t.Errorf("pages asked after %q, want \",1000,2000\"", got)
	}
}

// TestCtlClusterStatusShowsKeys: every member's addresses and key are
// printed, followers' too; a member without a registered key shows "-".
func TestCtlClusterStatusShowsKeys(t *testing.T) {
	t.Parallel()
	k1, k2 := bytes32(1), bytes32(2)
	st := coordinator.Status{ID: "c1", State: "Leader", LeaderID: "c1", Members: []coordinator.MemberStatus{
		{Member: coordinator.Member{ID: "c1", RaftAddr: "10.0.0.1:7001", QUICAddr: "10.0.0.1:4431", HTTPAddr: "10.0.0.1:8081", PublicKey: k1}, Suffrage: "Voter", Leader: true},
		{Member: coordinator.Member{ID: "c2", RaftAddr: "10.0.0.2:7001", QUICAddr: "10.0.0.2:4431", HTTPAddr: "10.0.0.2:8081", PublicKey: k2}, Suffrage: "Voter"},
		{Member: coordinator.Member{ID: "c3", RaftAddr: "10.0.0.3:7001"}, Suffrage: "Voter"},
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	}))
	defer srv.Close()
	code, out, errOut := runCtl(t, "--server", srv.URL, "--api-key", ctlReader, "cluster", "status")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"10.0.0.2:4431", "10.0.0.2:8081", crypto.FormatPublicKey(k1), crypto.FormatPublicKey(k2),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("cluster status lacks %s:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "c3 ") && !strings.HasSuffix(strings.TrimSpace(line), "-") {
			t.Errorf("member without a key: %q, want a trailing -", line)
		}
	}
}

func bytes32(b byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = b
	}
	return k
}
