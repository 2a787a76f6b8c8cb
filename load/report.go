package load

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mfn/mfn/audit"
)

// Report is the outcome of a run. Its JSON form is what "mfn load --json"
// writes; the field names are part of the command's interface.
type Report struct {
	Nodes     int    `json:"nodes"`
	Byzantine int    `json:"byzantine"`
	Dim       int    `json:"dim"`
	Rounds    int    `json:"rounds"`
	Rule      string `json:"rule"`
	Job       string `json:"job"`
	Seed      uint64 `json:"seed"`
	// Interrupted is true when the run was stopped (context cancelled or
	// Timeout) before every round ended; the figures cover what ran.
	Interrupted bool `json:"interrupted"`

	// Acked counts acknowledged updates (a Duplicate answer counts as an
	// acknowledgement of the earlier copy).
	Acked int `json:"acked"`
	// Unconfirmed counts updates sent whose acknowledgement never arrived
	// (a transport failure, e.g. the leader died, and no later answer
	// settled it): the cluster may hold them, so InLog may exceed Acked
	// by up to this many.
	Unconfirmed int `json:"unconfirmed"`
	// Lost counts acknowledged updates missing from the exported audit
	// log, Duplicated the (node, round) pairs present more than once.
	// Both are -1 when the log could not be checked (see Errors).
	Lost       int `json:"lost"`
	Duplicated int `json:"duplicated"`
	// InLog counts the job's leaves in the exported log.
	InLog int `json:"in_log"`
	// LeaderChanges counts leader changes seen in the cluster status,
	// polled once a second during the run.
	LeaderChanges int `json:"leader_changes"`
	// RoundsClosed and RoundsFailed count the job's rounds that ended.
	RoundsClosed int `json:"rounds_closed"`
	RoundsFailed int `json:"rounds_failed"`

	// Seconds is the submission phase: first announcement to last
	// acknowledgement (or interruption).
	Seconds        float64 `json:"seconds"`
	AcksPerSecond  float64 `json:"acks_per_second"`
	BytesSent      int64   `json:"bytes_sent"`
	BytesPerSecond float64 `json:"bytes_per_second"`
	// SealedBytes is the size of one sealed update (the last one built).
	SealedBytes int `json:"sealed_bytes"`

	// Ack latency: from the start of Submit to its acknowledgement.
	AckP50ms float64 `json:"ack_p50_ms"`
	AckP90ms float64 `json:"ack_p90_ms"`
	AckP99ms float64 `json:"ack_p99_ms"`
	// Round close latency: from the round's last acknowledgement to the
	// moment its committed result was seen (round_closed event).
	RoundCloseP50ms float64 `json:"round_close_p50_ms"`
	RoundCloseP99ms float64 `json:"round_close_p99_ms"`

	// Coordinator resources, from the members' /metrics
	// (process_resident_memory_bytes, process_cpu_seconds_total), or from
	// this process for a local cluster (which then includes the load
	// generator). Zero when none could be read.
	CoordinatorMaxRSS int64 `json:"coordinator_max_rss_bytes"`
	// CoordinatorPeakRSS is each member's peak (by API URL; "self" for a
	// local cluster).
	CoordinatorPeakRSS   map[string]int64 `json:"coordinator_peak_rss_bytes"`
	CoordinatorCPUSecs   float64          `json:"coordinator_cpu_seconds"`
	CoordinatorCPUPerAck float64          `json:"coordinator_cpu_ms_per_ack"`

	// Hold (Config.Hold): how long the nodes stayed connected, idle, after
	// the last round; the fewest nodes with a live subscription at any
	// one-second sample of it; each member's RSS (by API URL, or "self")
	// at its end, and the highest of them.
	HoldSeconds     float64          `json:"hold_seconds,omitempty"`
	HeldConnections int              `json:"held_connections,omitempty"`
	HoldRSS         map[string]int64 `json:"hold_rss_bytes,omitempty"`
	HoldMaxRSS      int64            `json:"hold_max_rss_bytes,omitempty"`
	MetricsSource   string           `json:"metrics_source"`

	// API scenario: requests made by the readers, their latency, and the
	// events the WebSocket subscribers received.
	APIRequests  int     `json:"api_requests"`
	APIP50ms     float64 `json:"api_p50_ms"`
	APIP99ms     float64 `json:"api_p99_ms"`
	APIEvents    int     `json:"api_events"`
	APIReaders   int     `json:"api_readers"`
	APIEventSubs int     `json:"api_event_subscribers"`

	// Errors counts failures by type (see the Err* kinds in doc.go).
	Errors map[string]int `json:"errors"`
}

// percentile returns the p-quantile (0 ≤ p ≤ 1) of sorted by the nearest
// rank method, in milliseconds; 0 for no samples.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.999999999) - 1
	i = min(max(i, 0), len(sorted)-1)
	return float64(sorted[i]) / float64(time.Millisecond)
}

// latencies summarises samples as p50, p90, p99 in milliseconds.
func latencies(samples []time.Duration) (p50, p90, p99 float64) {
	s := slices.Clone(samples)
	slices.Sort(s)
	return percentile(s, 0.50), percentile(s, 0.90), percentile(s, 0.99)
}

// AckRecord is one acknowledged update as the load generator saw it.
type AckRecord struct {
	Node  string
	Round uint64
	Leaf  uint64
	// Duplicate is true when the cluster answered "duplicate" (the update
	// was acknowledged earlier; Leaf is then unknown).
	Duplicate bool
}

// LogCheck is the comparison of acknowledgements with the audit log.
type LogCheck struct {
	InLog      int // the job's leaves
	Lost       int // acknowledged but absent (or at another leaf)
	Duplicated int // (node, round) pairs present more than once
}

// CheckLog compares acks with the audit leaves of job: leaves[i] is leaf
// first+i, in the audit.Leaf encoding. An ack is lost when no leaf of the job
// holds its (node, round) pair, or when the leaf it was acknowledged at
// holds another pair. A leaf that does not parse is an error naming it.
func CheckLog(job string, first uint64, leaves [][]byte, acks []AckRecord) (LogCheck, error) {
	type key struct {
		node  string
		round uint64
	}
	var c LogCheck
	at := map[key][]uint64{}
	for i, b := range leaves {
		if audit.IsResultLeaf(b) {
			continue // a round's result (members that attest rounds write them)
		}
		l, err := audit.ParseLeaf(b)
		if err != nil {
			return c, fmt.Errorf("load: audit leaf %d: %w", first+uint64(i), err)
		}
		if l.JobID != job {
			continue
		}
		c.InLog++
		k := key{l.NodeID, l.Round}
		at[k] = append(at[k], first+uint64(i))
	}
	for _, idx := range at {
		if len(idx) > 1 {
			c.Duplicated++
		}
	}
	for _, a := range acks {
		idx := at[key{a.Node, a.Round}]
		if len(idx) == 0 || (!a.Duplicate && !slices.Contains(idx, a.Leaf)) {
			c.Lost++
		}
	}
	return c, nil
}

// WriteJSON writes r to path atomically: a temporary file in the same
// directory, synced, then renamed over path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".load-report-*.json")
	if err != nil {
		return fmt.Errorf("load: write report: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("load: write report %s: %w", path, err)
	}
	return nil
}

// Print writes the human-readable report.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "\nload report (job %s, seed %d)\n", r.Job, r.Seed)
	if r.Interrupted {
		fmt.Fprintf(w, "  INTERRUPTED: figures cover what ran\n")
	}
	fmt.Fprintf(w, "  nodes %d (%d Byzantine), dim %d, rounds %d, rule %s, sealed update %s\n",
		r.Nodes, r.Byzantine, r.Dim, r.Rounds, r.Rule, humanBytes(float64(r.SealedBytes)))
	fmt.Fprintf(w, "  acknowledged       %d in %.1fs: %.0f acks/s, %.1f MB/s\n", r.Acked, r.Seconds, r.AcksPerSecond, r.BytesPerSecond/1e6)
	if r.Unconfirmed > 0 {
		fmt.Fprintf(w, "  unconfirmed        %d (sent, acknowledgement lost in transport)\n", r.Unconfirmed)
	}
	fmt.Fprintf(w, "  ack latency        p50 %.1f ms  p90 %.1f ms  p99 %.1f ms\n", r.AckP50ms, r.AckP90ms, r.AckP99ms)
	fmt.Fprintf(w, "  round close        p50 %.1f ms  p99 %.1f ms  (%d closed, %d failed)\n", r.RoundCloseP50ms, r.RoundCloseP99ms, r.RoundsClosed, r.RoundsFailed)
	if r.Lost < 0 {
		fmt.Fprintf(w, "  audit log          not checked (see errors)\n")
	} else {
		fmt.Fprintf(w, "  audit log          %d leaves of the job, lost %d, duplicated %d\n", r.InLog, r.Lost, r.Duplicated)
	}
	fmt.Fprintf(w, "  leader changes     %d\n", r.LeaderChanges)
	if r.MetricsSource != "" {
		fmt.Fprintf(w, "  coordinators       peak RSS %s, CPU %.1fs = %.2f ms/ack (%s)\n",
			humanBytes(float64(r.CoordinatorMaxRSS)), r.CoordinatorCPUSecs, r.CoordinatorCPUPerAck, r.MetricsSource)
	}
	if r.HoldSeconds > 0 {
		fmt.Fprintf(w, "  hold               %.0fs idle after the last round: %d of %d nodes stayed connected; member RSS at its end %s (max %s)\n",
			r.HoldSeconds, r.HeldConnections, r.Nodes, holdRSS(r.HoldRSS), humanBytes(float64(r.HoldMaxRSS)))
	}
	if r.APIReaders > 0 || r.APIEventSubs > 0 {
		fmt.Fprintf(w, "  operator API       %d requests by %d readers, p50 %.1f ms p99 %.1f ms; %d events to %d subscribers\n",
			r.APIRequests, r.APIReaders, r.APIP50ms, r.APIP99ms, r.APIEvents, r.APIEventSubs)
	}
	if len(r.Errors) == 0 {
		fmt.Fprintf(w, "  errors             none\n")
		return
	}
	kinds := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, r.Errors[k])
	}
	fmt.Fprintf(w, "  errors             %s\n", strings.Join(parts, ", "))
}

// holdRSS lists members' RSS readings in key order.
func holdRSS(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + humanBytes(float64(m[k]))
	}
	return strings.Join(parts, ", ")
}

func humanBytes(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}
