package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/crypto"
)

// checkLog is a signed, cosigned log in which node-00 took part in five
// rounds of job "j": round 1 used, round 2 rejected by the rule, round 3
// omitted from the signed result (missing), round 4 without a result
// leaf, round 5 used (the test forges its bundle).
type checkLog struct {
	l       *audit.Log
	members audit.MemberKeys
	recs    []Record // node-00's, rounds 1..5
	results map[string]uint64
}

const rejectReason = "distance to the median above the threshold"

func buildCheckLog(t *testing.T) *checkLog {
	t.Helper()
	const origin = "mfn.test/roundcheck"
	skey, vkey, err := audit.GenerateLogKey(origin, rand.Reader)
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
	l, err := audit.NewLog(origin, verifier)
	if err != nil {
		t.Fatal(err)
	}
	// The records' acknowledgement time (the checker's clock is fixed at
	// one hour later).
	ackedAt := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cl := &checkLog{l: l, members: audit.SampleMemberKeys(3), results: map[string]uint64{}}
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	model := sha256.Sum256([]byte("initial"))
	for round := uint64(1); round <= 5; round++ {
		res := &audit.ResultLeaf{Origin: origin, JobID: "j", Round: round, Rule: "krum", Params: "f=1",
			Weighting: audit.WeightSamples, BaseHash: model}
		for n := range 2 {
			update := sha256.Sum256(fmt.Appendf(nil, "update %d %d", round, n))
			made := epoch.Add(time.Duration(round)*time.Minute + time.Duration(n)*time.Second)
			st := crypto.Statement{Origin: origin, JobID: "j", Round: round, NodeID: audit.SampleNodeID(n),
				BaseModelHash: model, UpdateHash: update, SampleCount: 100, Time: made}
			stmt, err := st.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			priv := audit.SampleNodeKey(n)
			leaf, err := audit.NewLeaf(stmt, crypto.SignStatement(priv, stmt), priv.Public().(ed25519.PublicKey), made.Add(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			idx, err := l.Append(leaf)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				cl.recs = append(cl.recs, Record{Job: "j", Round: round, LeafIndex: idx, UpdateHash: hex.EncodeToString(update[:]), AckedAt: ackedAt})
			}
			score := float64(round)
			e := audit.ResultEntry{LeafIndex: idx, Input: true, Used: true, Score: &score}
			switch {
			case n == 0 && round == 2:
				e.Used, e.Reason = false, rejectReason
			case n == 0 && round == 3:
				continue // the signed result omits node-00's update
			}
			res.Entries = append(res.Entries, e)
		}
		res.NewHash = sha256.Sum256(fmt.Appendf(nil, "model %d", round))
		model = res.NewHash
		if round == 4 {
			continue // no result leaf
		}
		idx, err := l.AppendResult(res)
		if err != nil {
			t.Fatal(err)
		}
		cl.results[fmt.Sprintf("j/%d", round)] = idx
	}
	root := l.Root()
	msg, err := audit.SignCheckpoint(signer, l.Origin(), l.Size(), root[:])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.AddCheckpoint(msg); err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	for m := range 3 {
		line, err := audit.CosignCheckpoint(msg, verifier, audit.SampleMemberID(m), audit.SampleMemberKey(m), epoch.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
	}
	if err := l.Cosign(l.Checkpoints()-1, cl.members, lines...); err != nil {
		t.Fatal(err)
	}
	return cl
}

// countingSource counts the requests of a RoundSource.
type countingSource struct {
	RoundSource
	mu      sync.Mutex
	bundles map[uint64]int
}

func (s *countingSource) Bundle(ctx context.Context, leaf uint64) ([]byte, error) {
	s.mu.Lock()
	if s.bundles == nil {
		s.bundles = map[uint64]int{}
	}
	s.bundles[leaf]++
	s.mu.Unlock()
	return s.RoundSource.Bundle(ctx, leaf)
}

func (s *countingSource) count(leaf uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bundles[leaf]
}

// logLines parses the JSON log lines of buf.
func logLines(t *testing.T, buf *syncBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// newTestChecker returns a checker of node-00's records over src.
func newTestChecker(t *testing.T, cl *checkLog, src RoundSource, maxTries int, every time.Duration) (*roundChecker, *metrics, *syncBuffer) {
	t.Helper()
	st, err := OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cl.recs {
		if err := st.RecordAck(r); err != nil {
			t.Fatal(err)
		}
	}
	// A duplicate record (its leaf unknown) is never checked nor counted.
	if err := st.RecordAck(Record{Job: "j", Round: 6, Duplicate: true}); err != nil {
		t.Fatal(err)
	}
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	buf := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := RoundCheckConfig{Source: src, Verifier: cl.l.Verifier(), Members: cl.members, MaxTries: maxTries, Every: every}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC) }
	return newRoundChecker(cfg, audit.SampleNodeID(0), st, m, log, now), m, buf
}

func outcomeCounts(m *metrics) map[string]float64 {
	out := map[string]float64{}
	for _, o := range []string{OutcomeUsed, OutcomeRejected, OutcomeNotInput, OutcomeMissing, OutcomeNoResult, OutcomeUnverified} {
		out[o] = testutil.ToFloat64(m.roundOutcomes.WithLabelValues(o))
	}
	return out
}

func wantCounts(t *testing.T, m *metrics, want map[string]float64) {
	t.Helper()
	got := outcomeCounts(m)
	for _, o := range []string{OutcomeUsed, OutcomeRejected, OutcomeNotInput, OutcomeMissing, OutcomeNoResult, OutcomeUnverified} {
		if got[o] != want[o] {
			t.Errorf("mfn_node_round_outcomes_total{outcome=%q} = %v, want %v (all: %v)", o, got[o], want[o], got)
		}
	}
}

// TestRoundCheckOutcomes: the counters show exactly the verified
// outcomes; a forged bundle counts as unverified, never as used; rounds
// without a result or that do not verify are checked again until their
// tries are spent, settled rounds never again.
func TestRoundCheckOutcomes(t *testing.T) {
	cl := buildCheckLog(t)
	forged := cl.recs[4] // round 5: its update leaf's bundle is forged
	inner := &logSource{l: cl.l, results: cl.results, tamper: func(leaf uint64, b *audit.Bundle) {
		if leaf == forged.LeafIndex {
			b.Leaf[len(b.Leaf)-1] ^= 1
		}
	}}
	src := &countingSource{RoundSource: inner}
	rc, m, buf := newTestChecker(t, cl, src, 3, time.Hour)
	ctx := context.Background()

	rc.pass(ctx)
	wantCounts(t, m, map[string]float64{OutcomeUsed: 1, OutcomeRejected: 1, OutcomeMissing: 1})
	if got := testutil.ToFloat64(m.lastVerified.WithLabelValues("j")); got != 3 {
		t.Errorf("mfn_node_round_last_verified{job=j} = %v, want 3", got)
	}
	rc.pass(ctx)
	wantCounts(t, m, map[string]float64{OutcomeUsed: 1, OutcomeRejected: 1, OutcomeMissing: 1})
	rc.pass(ctx) // third try: rounds 4 and 5 count as their last outcome
	want := map[string]float64{OutcomeUsed: 1, OutcomeRejected: 1, OutcomeMissing: 1, OutcomeNoResult: 1, OutcomeUnverified: 1}
	wantCounts(t, m, want)
	rc.pass(ctx) // nothing left to check
	wantCounts(t, m, want)
	for i, r := range cl.recs {
		wantTries := 1
		if r.Round >= 4 {
			wantTries = 3
		}
		if got := src.count(r.LeafIndex); got != wantTries {
			t.Errorf("round %d: update leaf fetched %d times, want %d", i+1, got, wantTries)
		}
	}
	if got := testutil.ToFloat64(m.lastVerified.WithLabelValues("j")); got != 3 {
		t.Errorf("mfn_node_round_last_verified{job=j} = %v after the unverified round 5, want 3", got)
	}
	wantOutcomes := map[roundKey]string{{"j", 1}: OutcomeUsed, {"j", 2}: OutcomeRejected, {"j", 3}: OutcomeMissing,
		{"j", 4}: OutcomeNoResult, {"j", 5}: OutcomeUnverified}
	got := rc.outcomes()
	if len(got) != len(wantOutcomes) {
		t.Errorf("settled %v, want %v", got, wantOutcomes)
	}
	for k, o := range wantOutcomes {
		if got[k] != o {
			t.Errorf("round %d settled as %q, want %q", k.round, got[k], o)
		}
	}

	// One log line per settled round, at the level its outcome calls for.
	type line struct{ level, msg, reason string }
	byRound := map[float64]line{}
	for _, l := range logLines(t, buf) {
		if l["component"] != "round-check" {
			t.Errorf("log line without the component: %v", l)
		}
		r, _ := l["round"].(float64)
		if _, dup := byRound[r]; dup {
			t.Errorf("round %v logged twice", r)
		}
		reason, _ := l["reason"].(string)
		byRound[r] = line{l["level"].(string), l["msg"].(string), reason}
		if r == 5 && !strings.Contains(fmt.Sprint(l["err"]), "inclusion proof") {
			t.Errorf("round 5 logged without a verification error: %v", l)
		}
	}
	wantLines := map[float64]line{
		1: {"INFO", "round verified", ""},
		2: {"INFO", "round verified", rejectReason},
		3: {"ERROR", "round verified: the signed result omits this node's acknowledged update", ""},
		4: {"WARN", "round has no signed result", ""},
		5: {"ERROR", "round not verified", ""},
	}
	if len(byRound) != len(wantLines) {
		t.Errorf("logged rounds %v, want %v", byRound, wantLines)
	}
	for r, w := range wantLines {
		if byRound[r] != w {
			t.Errorf("round %v logged %+v, want %+v", r, byRound[r], w)
		}
	}
}

// TestRoundCheckRecovers: a round that did not verify at first (the
// server was down) and is verified at a later try counts once, as what
// it is.
func TestRoundCheckRecovers(t *testing.T) {
	cl := buildCheckLog(t)
	down := true
	inner := &logSource{l: cl.l, results: cl.results}
	src := &flakySource{RoundSource: inner, down: func() bool { return down }}
	rc, m, _ := newTestChecker(t, cl, src, 3, time.Hour)
	rc.pass(context.Background())
	wantCounts(t, m, nil)
	down = false
	rc.pass(context.Background())
	wantCounts(t, m, map[string]float64{OutcomeUsed: 2, OutcomeRejected: 1, OutcomeMissing: 1})
}

// endSource says whether rounds ended.
type endSource struct {
	RoundSource
	mu    sync.Mutex
	ended bool
}

func (s *endSource) RoundEnded(context.Context, string, uint64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended, nil
}

// TestRoundCheckOpenRound: a round without a result that has not ended
// spends no tries; once it has ended, it counts as no-result after its
// tries.
func TestRoundCheckOpenRound(t *testing.T) {
	cl := buildCheckLog(t)
	src := &endSource{RoundSource: &logSource{l: cl.l, results: cl.results}}
	rc, m, _ := newTestChecker(t, cl, src, 2, time.Hour)
	ctx := context.Background()
	for range 5 {
		rc.pass(ctx)
	}
	want := map[string]float64{OutcomeUsed: 2, OutcomeRejected: 1, OutcomeMissing: 1}
	wantCounts(t, m, want)
	if _, ok := rc.outcomes()[roundKey{"j", 4}]; ok {
		t.Fatal("round 4 settled while it runs")
	}
	src.mu.Lock()
	src.ended = true
	src.mu.Unlock()
	rc.pass(ctx)
	wantCounts(t, m, want)
	rc.pass(ctx)
	want[OutcomeNoResult] = 1
	wantCounts(t, m, want)

	// A round the source says runs for longer than MaxWait after the
	// acknowledgement spends its tries all the same (the clock is one
	// hour past it).
	src.mu.Lock()
	src.ended = false
	src.mu.Unlock()
	rc, m, _ = newTestChecker(t, cl, src, 2, time.Hour)
	rc.cfg.MaxWait = 30 * time.Minute
	rc.pass(ctx)
	rc.pass(ctx)
	wantCounts(t, m, want)
}

type flakySource struct {
	RoundSource
	down func() bool
}

func (s *flakySource) Bundle(ctx context.Context, leaf uint64) ([]byte, error) {
	if s.down() {
		return nil, fmt.Errorf("503 unavailable")
	}
	return s.RoundSource.Bundle(ctx, leaf)
}

// blockingSource answers nothing until its request's context ends.
type blockingSource struct{ calls chan struct{} }

func (s blockingSource) ResultLeaf(ctx context.Context, _ string, _ uint64) (uint64, bool, error) {
	<-ctx.Done()
	return 0, false, ctx.Err()
}

func (s blockingSource) Bundle(ctx context.Context, _ uint64) ([]byte, error) {
	select {
	case s.calls <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestRoundCheckLoop: the loop checks at once, again when a later round
// of the job is announced, each request under its timeout, and stops
// with its context.
func TestRoundCheckLoop(t *testing.T) {
	cl := buildCheckLog(t)
	src := &countingSource{RoundSource: &logSource{l: cl.l, results: cl.results}}
	rc, m, _ := newTestChecker(t, cl, src, 10, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		rc.run(ctx)
	}()
	eventually(t, 10*time.Second, "the first check", func() bool { return outcomeCounts(m)[OutcomeUsed] == 2 })
	round4 := cl.recs[3].LeafIndex
	eventually(t, 10*time.Second, "round 4 checked once", func() bool { return src.count(round4) == 1 })
	// A later round of another job, or round 4 itself, is no reason to
	// check; round 5 of "j" is (round 4 has no result yet).
	rc.announced("other", 9)
	rc.announced("j", 4)
	if len(rc.kick) != 0 {
		t.Fatal("a check was asked for without an unsettled earlier round")
	}
	rc.announced("j", 5)
	eventually(t, 10*time.Second, "a check after the announcement", func() bool { return src.count(round4) == 2 })
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not stop with its context")
	}

	// A server that never answers holds each request for Timeout only.
	bs := blockingSource{calls: make(chan struct{}, 1)}
	rc2, m2, _ := newTestChecker(t, cl, bs, 1, time.Hour)
	rc2.cfg.Timeout = 20 * time.Millisecond
	start := time.Now()
	rc2.pass(context.Background())
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a pass over 5 blocked requests took %v with a 20ms timeout", d)
	}
	wantCounts(t, m2, map[string]float64{OutcomeUnverified: 5})
}

func TestRoundCheckConfigValidate(t *testing.T) {
	cl := buildCheckLog(t)
	src := &logSource{l: cl.l, results: cl.results}
	for _, c := range []struct {
		cfg  RoundCheckConfig
		want string
	}{
		{RoundCheckConfig{Verifier: cl.l.Verifier()}, "RoundCheck.Source"},
		{RoundCheckConfig{Source: src}, "RoundCheck.Verifier"},
		{RoundCheckConfig{Source: src, Verifier: cl.l.Verifier(), Every: -1}, "RoundCheck.Every"},
	} {
		cfg := DefaultConfig()
		cfg.IdentityDir, cfg.StateDir = "keys", t.TempDir()
		cfg.Cluster = &Cluster{Members: []Member{{ID: "c1", QUICAddr: "127.0.0.1:1", PublicKey: make(ed25519.PublicKey, ed25519.PublicKeySize), Recipient: newNodeIdentity(t, 1).Recipient()}}}
		cfg.RoundCheck = &c.cfg
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
}

// coordSource is a RoundSource over a coordinator member's state.
type coordSource struct{ c *coordinator.Coordinator }

func (s coordSource) ResultLeaf(_ context.Context, job string, round uint64) (uint64, bool, error) {
	r, err := s.c.GetRound(job, round)
	if err != nil {
		return 0, false, err
	}
	if r.Result == nil || r.Result.ResultLeaf == nil {
		return 0, false, nil
	}
	return *r.Result.ResultLeaf, true, nil
}

func (s coordSource) Bundle(_ context.Context, leaf uint64) ([]byte, error) {
	b, err := s.c.Bundle(leaf)
	if err != nil {
		return nil, err
	}
	return b.Marshal()
}

// TestAgentRoundCheck: a node's round check starts with Run, checks its
// records as soon as the next round of their job is announced, and stops
// with Run. (The in-memory cluster writes no result leaves, so its rounds
// stay no-result here; cmd/mfn's node_verify_rounds.txt checks verified
// outcomes against real coordinators.)
func TestAgentRoundCheck(t *testing.T) {
	mc := newMemCluster(t, 3)
	// The cluster's log key: newMemCluster draws it first from seed 42.
	_, vkey, err := audit.GenerateLogKey(mc.origin, seedReader(42))
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := audit.NewLogVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	id := newNodeIdentity(t, 300)
	mc.enroll(id)
	cfg := mc.nodeConfig(t, id, t.TempDir(), 1)
	src := &countingSource{RoundSource: coordSource{mc.members[0]}}
	// Every is long: only the first pass and announcements trigger checks.
	cfg.RoundCheck = &RoundCheckConfig{Source: src, Verifier: verifier, Every: time.Hour, MaxTries: 1000}
	a, stop := runAgent(t, cfg)
	mc.createJob(regimeJob("j", 2, 1, 1))
	recs := waitRecords(t, a, "j", 2)
	// Round 2's announcement made the node check round 1's record: its
	// update leaf is under a signed checkpoint, so it was fetched.
	eventually(t, 30*time.Second, "round 1 checked", func() bool { return src.count(recs[0].LeafIndex) >= 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(a.metrics.roundOutcomes.WithLabelValues(OutcomeNoResult)); v != 0 {
		t.Errorf("no-result counted %v times before its tries were spent", v)
	}
}
