package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/coordinator"
)

// fakeCoord is an in-memory Coordinator: a leader or a follower that
// knows a leader, with jobs, nodes, rounds and models in maps and an
// optional real audit log.
type fakeCoord struct {
	mu        sync.Mutex
	id        string
	leader    bool
	ready     bool
	leaderM   *coordinator.Member
	nodes     map[string]coordinator.Node
	jobs      map[string]coordinator.Job
	rounds    map[string][]coordinator.Round
	models    map[string]map[uint64]coordinator.Model
	members   []coordinator.Member
	linearize int
	writes    int
	// writeErr, when set, is returned by the next write.
	writeErr error
	log      *audit.Log
	subs     []chan coordinator.Event
}

func newFake(id string, leader bool) *fakeCoord {
	f := &fakeCoord{id: id, leader: leader, ready: true,
		nodes: map[string]coordinator.Node{}, jobs: map[string]coordinator.Job{},
		rounds: map[string][]coordinator.Round{}, models: map[string]map[uint64]coordinator.Model{}}
	if leader {
		f.leaderM = &coordinator.Member{ID: id}
	}
	return f
}

func (f *fakeCoord) Status() coordinator.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := coordinator.Status{ID: f.id, State: "Follower", Term: 3}
	if f.leader {
		st.State = "Leader"
	}
	if f.leaderM != nil {
		m := *f.leaderM
		st.LeaderID, st.Leader = m.ID, &m
	}
	for _, m := range f.members {
		st.Members = append(st.Members, coordinator.MemberStatus{Member: m, Suffrage: "Voter", Leader: m.ID == st.LeaderID})
	}
	return st
}

func (f *fakeCoord) Ready() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ready
}

func (f *fakeCoord) IsLeader() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader
}

func (f *fakeCoord) Leader() (coordinator.Member, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leaderM == nil {
		return coordinator.Member{}, false
	}
	return *f.leaderM, true
}

func (f *fakeCoord) notLeader() error {
	if f.leaderM == nil {
		return &coordinator.NotLeaderError{}
	}
	return &coordinator.NotLeaderError{LeaderID: f.leaderM.ID, HTTPAddr: f.leaderM.HTTPAddr}
}

func (f *fakeCoord) Linearize(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.linearize++
	if !f.leader {
		return f.notLeader()
	}
	return nil
}

// write runs a write under the lock after the leader and injected-error
// checks.
func (f *fakeCoord) write(fn func() error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if !f.leader {
		return f.notLeader()
	}
	if err := f.writeErr; err != nil {
		f.writeErr = nil
		return err
	}
	return fn()
}

func (f *fakeCoord) AddVoter(_ context.Context, m coordinator.Member) error {
	return f.write(func() error {
		f.members = append(f.members, m)
		return nil
	})
}

func (f *fakeCoord) RemoveServer(_ context.Context, id string) error {
	return f.write(func() error {
		i := slices.IndexFunc(f.members, func(m coordinator.Member) bool { return m.ID == id })
		if i < 0 {
			return fmt.Errorf("%w: member %s", coordinator.ErrNotFound, id)
		}
		f.members = slices.Delete(f.members, i, i+1)
		return nil
	})
}

func (f *fakeCoord) EnrollNode(_ context.Context, id string, key ed25519.PublicKey) error {
	return f.write(func() error {
		if n, ok := f.nodes[id]; ok && !bytes.Equal(n.PublicKey, key) {
			return fmt.Errorf("%w: node %s", coordinator.ErrExists, id)
		}
		f.nodes[id] = coordinator.Node{ID: id, PublicKey: key, EnrolledAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
		return nil
	})
}

func (f *fakeCoord) RevokeNode(_ context.Context, id string) error {
	return f.write(func() error {
		n, ok := f.nodes[id]
		if !ok {
			return fmt.Errorf("%w: node %s", coordinator.ErrNotFound, id)
		}
		n.Revoked, n.RevokedAt = true, time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)
		f.nodes[id] = n
		return nil
	})
}

func (f *fakeCoord) ListNodes() []coordinator.Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []coordinator.Node
	for _, n := range f.nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b coordinator.Node) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (f *fakeCoord) CreateJob(_ context.Context, spec coordinator.JobSpec) (coordinator.Job, error) {
	var j coordinator.Job
	err := f.write(func() error {
		if spec.ID == "" || spec.Dim <= 0 {
			return fmt.Errorf("%w: job %q: dim must be ≥ 1", coordinator.ErrInvalid, spec.ID)
		}
		if _, ok := f.jobs[spec.ID]; ok {
			return fmt.Errorf("%w: job %s", coordinator.ErrExists, spec.ID)
		}
		j = coordinator.Job{Spec: spec, State: coordinator.JobRunning}
		f.jobs[spec.ID] = j
		return nil
	})
	return j, err
}

func (f *fakeCoord) ListJobs() []coordinator.Job {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []coordinator.Job
	for _, j := range f.jobs {
		out = append(out, j)
	}
	slices.SortFunc(out, func(a, b coordinator.Job) int { return strings.Compare(a.Spec.ID, b.Spec.ID) })
	return out
}

func (f *fakeCoord) GetJob(id string) (coordinator.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return j, fmt.Errorf("%w: job %s", coordinator.ErrNotFound, id)
	}
	return j, nil
}

func (f *fakeCoord) StopJob(_ context.Context, id, reason string) error {
	return f.write(func() error {
		j, ok := f.jobs[id]
		if !ok {
			return fmt.Errorf("%w: job %s", coordinator.ErrNotFound, id)
		}
		j.State, j.Reason = coordinator.JobStopped, reason
		f.jobs[id] = j
		return nil
	})
}

func (f *fakeCoord) ListRounds(job string) ([]coordinator.Round, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.jobs[job]; !ok {
		return nil, fmt.Errorf("%w: job %s", coordinator.ErrNotFound, job)
	}
	return slices.Clone(f.rounds[job]), nil
}

func (f *fakeCoord) GetRound(job string, round uint64) (coordinator.Round, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.rounds[job] {
		if r.Number == round {
			return r, nil
		}
	}
	return coordinator.Round{}, fmt.Errorf("%w: job %s round %d", coordinator.ErrNotFound, job, round)
}

func (f *fakeCoord) Model(job string, version uint64) (coordinator.Model, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.models[job][version]
	if !ok {
		return m, fmt.Errorf("%w: job %s model %d", coordinator.ErrNotFound, job, version)
	}
	if m.Params == nil {
		return m, fmt.Errorf("%w: job %s model %d", coordinator.ErrModelPruned, job, version)
	}
	return m, nil
}

func (f *fakeCoord) LatestModel(job string) (coordinator.Model, error) {
	f.mu.Lock()
	var latest uint64
	found := false
	for v := range f.models[job] {
		if !found || v > latest {
			latest, found = v, true
		}
	}
	f.mu.Unlock()
	if !found {
		return coordinator.Model{}, fmt.Errorf("%w: job %s", coordinator.ErrNotFound, job)
	}
	return f.Model(job, latest)
}

func (f *fakeCoord) Subscribe() (<-chan coordinator.Event, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan coordinator.Event, 16)
	f.subs = append(f.subs, ch)
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if i := slices.Index(f.subs, ch); i >= 0 {
				f.subs = slices.Delete(f.subs, i, i+1)
				close(ch)
			}
		})
	}
}

// publish sends ev to every subscriber, dropping it for full ones.
func (f *fakeCoord) publish(ev coordinator.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// count reads a counter field under the lock.
func (f *fakeCoord) count(p *int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *p
}

func (f *fakeCoord) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func (f *fakeCoord) LatestCheckpoint() (coordinator.Checkpoint, error) {
	if f.log == nil {
		return coordinator.Checkpoint{}, fmt.Errorf("coordinator: %w", audit.ErrNoCheckpoint)
	}
	note, cp, err := f.log.LatestCheckpoint()
	if err != nil {
		return coordinator.Checkpoint{}, err
	}
	return coordinator.Checkpoint{Size: cp.Size, Root: coordinator.Hash(cp.Root), Note: note}, nil
}

func (f *fakeCoord) Bundle(leaf uint64) (*audit.Bundle, error) {
	if f.log == nil {
		return nil, audit.ErrNoCheckpoint
	}
	return f.log.Bundle(leaf)
}

func (f *fakeCoord) Consistency(from, to uint64) ([][]byte, error) {
	if f.log == nil {
		return nil, audit.ErrRange
	}
	return f.log.ConsistencyProof(from, to)
}

func (f *fakeCoord) Leaf(i uint64) ([]byte, error) {
	if f.log == nil {
		return nil, audit.ErrRange
	}
	return f.log.Leaf(i)
}

func (f *fakeCoord) AuditSize() uint64 {
	if f.log == nil {
		return 0
	}
	return f.log.Size()
}

// listingFake adds the CheckpointLister ability.
type listingFake struct{ *fakeCoord }

func (l listingFake) Checkpoints() ([]coordinator.Checkpoint, error) {
	var out []coordinator.Checkpoint
	for i := range l.log.Checkpoints() {
		note, cp, err := l.log.Checkpoint(i)
		if err != nil {
			return nil, err
		}
		out = append(out, coordinator.Checkpoint{Size: cp.Size, Root: coordinator.Hash(cp.Root), Note: note})
	}
	return out, nil
}

// Test keys, one per role (each ≥ MinKeyLen).
const (
	keyAdmin    = "admin-secret-0123456789"
	keyOperator = "operator-secret-0123456789"
	keyAuditor  = "auditor-secret-0123456789"
	keyReader   = "reader-secret-0123456789"
)

func testKeys(t testing.TB) *KeyStore {
	t.Helper()
	ks, err := NewKeyStore([]Key{
		{Name: "admin", Role: RoleAdmin, Secret: keyAdmin},
		{Name: "operator", Role: RoleOperator, Secret: keyOperator},
		{Name: "auditor", Role: RoleAuditor, Secret: keyAuditor},
		{Name: "reader", Role: RoleReader, Secret: keyReader},
	})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func sha256Hex(s string) string {
	d := sha256.Sum256([]byte(s))
	return hex.EncodeToString(d[:])
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newTestAPI serves the API of c on a loopback httptest server. mod may
// adjust the config. The returned buffer holds the JSON log.
func newTestAPI(t testing.TB, c Coordinator, mod func(*Config)) (*httptest.Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg := Config{
		Coordinator: c,
		Keys:        testKeys(t),
		Logger:      slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		RateLimit:   RateLimit{Rate: -1},
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, logs
}

// request sends one request with an optional key and JSON body.
func request(t testing.TB, srv *httptest.Server, method, path, key, body string, hdr ...string) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set(HeaderAPIKey, key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}
