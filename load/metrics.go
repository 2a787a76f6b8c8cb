package load

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxMetricsBody bounds the /metrics body read from a member.
const maxMetricsBody = 4 << 20

// maxMetricsLine bounds one line of it.
const maxMetricsLine = 64 << 10

// ProcessSample is one reading of a coordinator process's resources.
type ProcessSample struct {
	RSS     int64   // resident set size, bytes
	CPUSecs float64 // CPU time used so far, seconds
}

// ParseProcessMetrics reads process_resident_memory_bytes and
// process_cpu_seconds_total from a Prometheus text exposition. A metric
// that is missing is left zero; found reports whether either was present.
// It reads at most maxMetricsBody bytes and never panics on bad input.
func ParseProcessMetrics(r io.Reader) (s ProcessSample, found bool, err error) {
	sc := bufio.NewScanner(io.LimitReader(r, maxMetricsBody))
	sc.Buffer(make([]byte, 0, 4096), maxMetricsLine)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if i := strings.IndexByte(val, ' '); i >= 0 { // a timestamp follows
			val = val[:i]
		}
		switch name {
		case "process_resident_memory_bytes":
			v, perr := strconv.ParseFloat(val, 64)
			if perr != nil || !(v >= 0 && v <= 1<<50) {
				return s, found, fmt.Errorf("load: metrics: bad %s value %q", name, val)
			}
			s.RSS, found = int64(v), true
		case "process_cpu_seconds_total":
			v, perr := strconv.ParseFloat(val, 64)
			if perr != nil || !(v >= 0 && v <= 1e12) {
				return s, found, fmt.Errorf("load: metrics: bad %s value %q", name, val)
			}
			s.CPUSecs, found = v, true
		}
	}
	if err := sc.Err(); err != nil {
		return s, found, fmt.Errorf("load: metrics: %w", err)
	}
	return s, found, nil
}

// scrape reads one member's /metrics.
func scrape(ctx context.Context, hc *http.Client, base string) (ProcessSample, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/metrics", nil)
	if err != nil {
		return ProcessSample{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return ProcessSample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ProcessSample{}, fmt.Errorf("load: %s/metrics: status %d", base, resp.StatusCode)
	}
	s, found, err := ParseProcessMetrics(resp.Body)
	if err == nil && !found {
		err = fmt.Errorf("load: %s/metrics has no process metrics", base)
	}
	return s, err
}

// selfSample reads this process's peak RSS (VmHWM) and CPU time: the
// resources of a local cluster, which runs inside the load generator.
func selfSample() (ProcessSample, error) {
	var s ProcessSample
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return s, err
	}
	s.CPUSecs = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	s.RSS = int64(ru.Maxrss) * 1024 // Linux reports KiB (int32 on 32-bit platforms)
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				if f := strings.Fields(v); len(f) > 0 {
					if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
						s.RSS = n * 1024
					}
				}
			}
		}
	}
	return s, nil
}
