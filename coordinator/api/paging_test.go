package api

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mfn/mfn/coordinator"
)

// TestRoundsPaged: the round list comes in pages of at most limit rounds
// in increasing number, next_after links them, bad limits are 400, and
// the client's Rounds follows every page.
func TestRoundsPaged(t *testing.T) {
	t.Parallel()
	f := seededFake()
	const total = 2*MaxRoundsPage + 37
	var rounds []coordinator.Round
	for i := total; i >= 1; i-- { // stored out of order on purpose
		rounds = append(rounds, coordinator.Round{Job: "j1", Number: uint64(i), State: coordinator.RoundClosed,
			Updates: []coordinator.Update{{Node: "n1", Sealed: []byte("secret")}}})
	}
	f.rounds["j1"] = rounds
	srv, _ := newTestAPI(t, f, nil)

	page := decodeResp[RoundList](t, request(t, srv, "GET", "/v1/jobs/j1/rounds", keyReader, ""), http.StatusOK)
	if len(page.Rounds) != DefaultRoundsPage || page.Rounds[0].Number != 1 || page.NextAfter == nil || *page.NextAfter != DefaultRoundsPage {
		t.Fatalf("first default page: %d rounds from %d, next %v", len(page.Rounds), page.Rounds[0].Number, page.NextAfter)
	}
	page = decodeResp[RoundList](t, request(t, srv, "GET", fmt.Sprintf("/v1/jobs/j1/rounds?after=%d&limit=7", total-5), keyReader, ""), http.StatusOK)
	if len(page.Rounds) != 5 || page.Rounds[0].Number != total-4 || page.NextAfter != nil {
		t.Fatalf("last page: %d rounds, next %v", len(page.Rounds), page.NextAfter)
	}
	if page.Rounds[0].Updates[0].Sealed != nil {
		t.Error("sealed envelope served in the round list")
	}
	for _, q := range []string{"limit=0", fmt.Sprintf("limit=%d", MaxRoundsPage+1), "limit=x", "after=-1"} {
		wantError(t, request(t, srv, "GET", "/v1/jobs/j1/rounds?"+q, keyReader, ""), http.StatusBadRequest, CodeBadRequest)
	}
	page = decodeResp[RoundList](t, request(t, srv, "GET", "/v1/jobs/j1/rounds?after=18446744073709551615", keyReader, ""), http.StatusOK)
	if len(page.Rounds) != 0 || page.NextAfter != nil {
		t.Errorf("after the largest number: %d rounds", len(page.Rounds))
	}

	cl, _ := NewClient(srv.URL, keyReader, srv.Client())
	all, err := cl.Rounds(context.Background(), "j1")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != total {
		t.Fatalf("client got %d rounds, want %d", len(all), total)
	}
	for i, r := range all {
		if r.Number != uint64(i+1) {
			t.Fatalf("round %d at position %d", r.Number, i)
		}
	}
}

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct {
	h http.Header
	n int64
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }

// TestModelDownloadStreams: both formats are byte-identical to the
// encodings the hash covers, and a download of an 8 MB model allocates
// far less than a second copy of it.
func TestModelDownloadStreams(t *testing.T) {
	f := seededFake()
	const dim = 1 << 20
	params := make(coordinator.Params, dim)
	for i := range params {
		params[i] = math.Sin(float64(i))
	}
	f.models["big"] = map[uint64]coordinator.Model{0: {Job: "big", Params: params, Hash: coordinator.ModelHash(params)}}
	srv, _ := newTestAPI(t, f, nil)
	for _, c := range []struct {
		format string
		want   []byte
	}{{FormatFloat64, params.Bytes()}, {FormatUpdate, coordinator.ModelBytes(params)}} {
		resp := request(t, srv, "GET", "/v1/jobs/big/models/0/params?format="+c.format, keyReader, "")
		got, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %v", c.format, resp.StatusCode, err)
		}
		if !bytes.Equal(got, c.want) || resp.ContentLength != int64(len(c.want)) {
			t.Errorf("%s: %d bytes (Content-Length %d), want the %d bytes of the encoding", c.format, len(got), resp.ContentLength, len(c.want))
		}
	}

	h := srv.Config.Handler
	serve := func() int64 {
		req := httptest.NewRequest("GET", "/v1/jobs/big/models/0/params", nil)
		req.Header.Set(HeaderAPIKey, keyReader)
		d := &discardWriter{h: http.Header{}}
		h.ServeHTTP(d, req)
		return d.n
	}
	serve() // warm up
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n := serve()
	runtime.ReadMemStats(&after)
	if n != 8*dim {
		t.Fatalf("served %d bytes", n)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("a download of an %d-byte model allocated %d bytes; want under 1 MiB (no second copy)", 8*dim, alloc)
	}
}

// TestModelDownloadDeadline: a client that requests a large model and
// never reads is cut off after DownloadTimeout, not held forever.
func TestModelDownloadDeadline(t *testing.T) {
	t.Parallel()
	f := seededFake()
	params := make(coordinator.Params, 4<<20) // 32 MB, beyond loopback socket buffers
	f.models["big"] = map[uint64]coordinator.Model{0: {Job: "big", Params: params}}
	srv, logs := newTestAPI(t, f, func(c *Config) { c.DownloadTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /v1/jobs/big/models/0/params HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n\r\n", keyReader)
	start := time.Now()
	pollUntil(t, 10*time.Second, "the stalled download ends", func() bool {
		return strings.Contains(logs.String(), "model download cut short")
	})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("download held %v with a 300 ms deadline", d)
	}
	// What was sent is a truncated response.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	if n >= 8*int64(len(params)) {
		t.Errorf("the whole model arrived (%d bytes) despite the deadline", n)
	}
}
