package load

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/coordinator/api"
)

func TestParseProcessMetrics(t *testing.T) {
	text := `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
go_goroutines 42
process_resident_memory_bytes 1.2345678e+08
process_resident_memory_bytes_other 7
`
	s, found, err := ParseProcessMetrics(strings.NewReader(text))
	if err != nil || !found {
		t.Fatal(found, err)
	}
	if s.RSS != 123456780 || s.CPUSecs != 12.5 {
		t.Fatalf("got %+v", s)
	}
	if _, found, err := ParseProcessMetrics(strings.NewReader("go_goroutines 1\n")); err != nil || found {
		t.Fatalf("no process metrics: found %v err %v", found, err)
	}
	for _, bad := range []string{"process_resident_memory_bytes abc\n", "process_cpu_seconds_total -1\n", "process_resident_memory_bytes 1e300\n"} {
		if _, _, err := ParseProcessMetrics(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// A line over the limit is an error, not a huge allocation.
	if _, _, err := ParseProcessMetrics(strings.NewReader(strings.Repeat("x", maxMetricsLine+10))); err == nil {
		t.Error("overlong line accepted")
	}
}

func FuzzParseProcessMetrics(f *testing.F) {
	f.Add("process_cpu_seconds_total 1\nprocess_resident_memory_bytes 2 1700000000\n")
	f.Add("# x\nprocess_resident_memory_bytes NaN\n")
	f.Fuzz(func(t *testing.T, s string) {
		ps, _, err := ParseProcessMetrics(strings.NewReader(s))
		if err == nil && (ps.RSS < 0 || ps.CPUSecs < 0) {
			t.Fatalf("negative sample %+v", ps)
		}
	})
}

func TestSelfSample(t *testing.T) {
	s, err := selfSample()
	if err != nil {
		t.Fatal(err)
	}
	if s.RSS < 1<<20 || s.CPUSecs <= 0 {
		t.Fatalf("implausible self sample %+v", s)
	}
}

func TestMonitorScrapesEveryMember(t *testing.T) {
	var hits [2]atomic.Int64
	srv := make([]*httptest.Server, 2)
	for i := range srv {
		srv[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/metrics":
				n := hits[i].Add(1)
				fmt.Fprintf(w, "process_resident_memory_bytes %d\nprocess_cpu_seconds_total %d\n", (i+1)*1000*int(n), 10*int(n))
			default:
				http.NotFound(w, r)
			}
		}))
		defer srv[i].Close()
	}
	ac, err := api.NewClient(srv[0].URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{tgt: Target{API: []string{srv[0].URL}}, hc: srv[0].Client(), api: ac, errs: map[string]int{}}
	// The second member is found through the cluster status.
	urls := metricsURLs(e.tgt, coordinator.Status{Members: []coordinator.MemberStatus{
		{Member: coordinator.Member{ID: "c1", HTTPAddr: strings.TrimPrefix(srv[0].URL, "http://")}},
		{Member: coordinator.Member{ID: "c2", HTTPAddr: strings.TrimPrefix(srv[1].URL, "http://")}},
		{Member: coordinator.Member{ID: "c3"}},
	}})
	if len(urls) != 2 || urls[1] != srv[1].URL {
		t.Fatalf("urls %v", urls)
	}
	m := &monitor{e: e, urls: urls}
	for range 3 {
		m.sample(context.Background())
	}
	// Member 2's third sample: 2 × 1000 × 3 bytes; CPU 10 → 30 on each.
	if m.peakRSS != 6000 || m.peaks[srv[0].URL] != 3000 || m.peaks[srv[1].URL] != 6000 {
		t.Fatalf("peak %d, per member %v", m.peakRSS, m.peaks)
	}
	if got := m.cpu(); got != 40 {
		t.Fatalf("cpu %v, want 40 (20 per member)", got)
	}
	if !strings.Contains(m.source(), srv[1].URL) {
		t.Fatalf("source %q", m.source())
	}
}
