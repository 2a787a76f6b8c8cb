package coordinator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHandleJoinDuplicateKeys: a join request with a key twice is a 400
// naming the key, decided before anything else is looked at (so a nil
// member serves it).
func TestHandleJoinDuplicateKeys(t *testing.T) {
	t.Parallel()
	var c *Coordinator
	h := c.HandleJoin(nil)
	body := `{"id":"c9","raft_addr":"127.0.0.1:1","id":"c10","public_key":""}`
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, JoinPath, strings.NewReader(body)))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400: %s", rec.Code, rec.Body)
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatal(err)
	}
	if e.Error.Code != "bad_request" || !strings.Contains(e.Error.Message, `duplicate JSON key "id"`) {
		t.Errorf("error %+v, want bad_request naming the key id", e.Error)
	}
}
