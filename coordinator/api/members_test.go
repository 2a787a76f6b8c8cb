package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestRemoveUnknownMember: on a real member, removing an id that is not
// in the cluster is a 404 (Raft would accept it as a no-op), and the
// member itself is still there afterwards.
func TestRemoveUnknownMember(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := newRealCoordinator(t, reg)
	h, err := New(Config{Coordinator: c, Keys: testKeys(t), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp := request(t, srv, "DELETE", "/v1/cluster/members/c-typo", keyAdmin, "")
	e := wantError(t, resp, http.StatusNotFound, CodeNotFound)
	if e.Message != "member c-typo is not in the cluster" {
		t.Errorf("message %q", e.Message)
	}
	if st := c.Status(); len(st.Members) != 1 || st.Members[0].ID != "c0" {
		t.Errorf("members after the refused removal: %+v", st.Members)
	}
}
