package load

import (
	"strings"
	"testing"
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
