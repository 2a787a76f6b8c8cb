package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/protocol"
)

// sealStream seals update (float32) for (job, round) on base with a
// crypto.StreamSealer, as a streaming node does.
func (n *testNode) sealStream(t testing.TB, k *testKeys, job string, round uint64, base Hash, update []float64) []byte {
	t.Helper()
	upd := crypto.EncodeUpdate(update, crypto.Float32)
	stmt := &crypto.Statement{
		Origin: k.origin, JobID: job, Round: round, NodeID: n.id, BaseModelHash: base,
		SampleCount: 1, Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), UpdateHash: sha256.Sum256(upd),
	}
	s, err := crypto.NewStreamSealer(stmt, int64(len(upd)), n.key, k.recipients)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf, bytes.NewReader(upd)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// spillFiles lists what is left in c's spill directory.
func spillFiles(t testing.TB, c *Coordinator) []string {
	t.Helper()
	dir, err := c.spillDir()
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestQUICStreamedRound: a round whose updates arrive as streams over the
// node protocol (one streamed, retried, one framed) closes with the same
// model as the framed path gives, the retry gets the original ack, and no
// spill file is left.
func TestQUICStreamedRound(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, clusterOpts{})
	net := quicCluster(t, tc)
	nodes := newTestNodes(t, 2, 31)
	tc.enroll(nodes)
	li := tc.leader()
	l := tc.members[li]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const dim = 50_000 // several age chunks, several stream chunks
	spec := testSpec("s", dim, 2, 2)
	spec.InitialModel = make(Params, dim)
	for i := range spec.InitialModel {
		spec.InitialModel[i] = float64(i%13) / 8
	}
	if _, err := l.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	tc.waitRound(li, "s", 1, RoundOpen)
	base := ModelHash(spec.InitialModel)
	u0, u1 := make([]float64, dim), make([]float64, dim)
	for i := range u0 {
		u0[i] = float64(i%7) / 4
		u1[i] = -float64(i%5) / 2
	}
	cl, err := dialNode(t, net, tc, nodes[0], l.cfg.QUICAddr)
	if err != nil {
		t.Fatal(err)
	}
	if !cl.CanStream() {
		t.Fatal("the coordinator does not offer streams")
	}
	sealed := nodes[0].sealStream(t, tc.keys, "s", 1, base, u0)
	send := func() (*protocol.Ack, error) {
		return cl.SubmitStream(ctx, "s", 1, int64(len(sealed)), func(w io.Writer) error {
			_, err := w.Write(sealed)
			return err
		})
	}
	ack, err := send()
	if err != nil {
		t.Fatal(err)
	}
	again, err := send()
	if err != nil || *again != *ack {
		t.Fatalf("retry: %+v %v, want the original ack %+v", again, err, ack)
	}
	c1, err := dialNode(t, net, tc, nodes[1], l.cfg.QUICAddr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Submit(ctx, nodes[1].seal(t, tc.keys, "s", 1, base, roundTo32(u1), 1)); err != nil {
		t.Fatal(err)
	}
	tc.waitRound(li, "s", 1, RoundClosed)
	m, err := l.Model("s", 1)
	if err != nil {
		t.Fatal(err)
	}
	u0r := roundTo32(u0)
	for i := range m.Params {
		want := spec.InitialModel[i] + (u0r[i]+u1[i])/2
		if m.Params[i] != want {
			t.Fatalf("model[%d] = %v, want %v", i, m.Params[i], want)
		}
	}
	if left := spillFiles(t, l); len(left) != 0 {
		t.Fatalf("spill files left: %v", left)
	}
}

func roundTo32(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(float32(x))
	}
	return out
}

// failReader fails the test if read: a stream that must be refused
// before its bytes.
type failReader struct{ t *testing.T }

func (r failReader) Read([]byte) (int, error) {
	r.t.Error("the body of a refused stream was read")
	return 0, io.EOF
}

// errAfter yields b, then err.
type errAfter struct {
	b   []byte
	err error
}

func (r *errAfter) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, r.err
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// containerWithHash seals a container whose statement signs hash h,
// whatever the update hashes to.
func containerWithHash(t *testing.T, k *testKeys, n *testNode, job string, round uint64, base Hash, upd []byte, h [32]byte) []byte {
	t.Helper()
	stmt := &crypto.Statement{Origin: k.origin, JobID: job, Round: round, NodeID: n.id, BaseModelHash: base,
		SampleCount: 1, Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), UpdateHash: h}
	sb, err := stmt.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(crypto.EnvelopeMagic)
	plain = append(plain, crypto.EnvelopeVersion)
	plain = binary.BigEndian.AppendUint16(plain, uint16(len(sb)))
	plain = append(plain, sb...)
	plain = append(plain, crypto.SignStatement(n.key, sb)...)
	plain = binary.BigEndian.AppendUint64(plain, uint64(len(upd)))
	plain = append(plain, upd...)
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, k.recipients...)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	w.Close()
	return buf.Bytes()
}

// TestSubmitStreamRefusals: each bad stream gets its typed error, and no
// spill file outlives the call: a closed round and an oversized
// declaration are refused before a byte is read; a truncated body, a
// stalled one, a hash mismatch after the last chunk, non-finite values,
// a statement for another round than declared and a wrong dim are
// refused after.
func TestSubmitStreamRefusals(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 1, clusterOpts{})
	nodes := newTestNodes(t, 1, 32)
	tc.enroll(nodes)
	l := tc.members[0]
	ctx := context.Background()
	const dim = 20_000
	spec := testSpec("r", dim, 1, 1)
	if _, err := l.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	tc.waitRound(0, "r", 1, RoundOpen)
	base := ModelHash(make(Params, dim))
	n := nodes[0]
	good := n.sealStream(t, tc.keys, "r", 1, base, make([]float64, dim))
	upd := crypto.EncodeUpdate(make([]float64, dim), crypto.Float32)
	badVals := make([]float64, dim)
	badVals[7] = math.Inf(1)
	for _, c := range []struct {
		name string
		hint StreamHint
		body func(t *testing.T) io.Reader
		want []error
	}{
		{"closed round", StreamHint{"r", 9, int64(len(good))}, func(t *testing.T) io.Reader { return failReader{t} }, []error{ErrRoundNotOpen}},
		{"unknown job", StreamHint{"nope", 1, int64(len(good))}, func(t *testing.T) io.Reader { return failReader{t} }, []error{ErrNotFound}},
		{"oversized", StreamHint{"r", 1, StreamLimit(dim) + 1}, func(t *testing.T) io.Reader { return failReader{t} }, []error{ErrBadUpdate}},
		{"truncated", StreamHint{"r", 1, int64(len(good))}, func(*testing.T) io.Reader { return bytes.NewReader(good[:len(good)/2]) },
			[]error{ErrBadUpdate, protocol.ErrStreamTruncated}},
		{"longer than declared", StreamHint{"r", 1, int64(len(good)) - 1}, func(*testing.T) io.Reader { return bytes.NewReader(good) },
			[]error{ErrBadUpdate, protocol.ErrStreamTooLarge}},
		{"stalled", StreamHint{"r", 1, int64(len(good))}, func(*testing.T) io.Reader {
			return &errAfter{good[:1000], fmt.Errorf("%w: no chunk in time", protocol.ErrStreamStalled)}
		}, []error{ErrBadUpdate, protocol.ErrStreamStalled}},
		{"hash mismatch", StreamHint{"r", 1, 0}, func(t *testing.T) io.Reader {
			return bytes.NewReader(containerWithHash(t, tc.keys, n, "r", 1, base, upd, sha256.Sum256([]byte("other"))))
		}, []error{ErrBadUpdate, crypto.ErrBadSignature}},
		{"non-finite", StreamHint{"r", 1, 0}, func(t *testing.T) io.Reader {
			return bytes.NewReader(n.sealStream(t, tc.keys, "r", 1, base, badVals))
		}, []error{ErrBadUpdate, crypto.ErrMalformed}},
		{"other round than declared", StreamHint{"r", 1, 0}, func(t *testing.T) io.Reader {
			return bytes.NewReader(n.sealStream(t, tc.keys, "r", 2, base, make([]float64, dim)))
		}, []error{ErrBadUpdate}},
		{"wrong dim", StreamHint{"r", 1, 0}, func(t *testing.T) io.Reader {
			return bytes.NewReader(n.sealStream(t, tc.keys, "r", 1, base, make([]float64, dim-1)))
		}, []error{ErrBadUpdate}},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := c.body(t)
			if c.hint.Size == 0 {
				c.hint.Size = int64(body.(*bytes.Reader).Len())
			}
			_, err := l.SubmitStream(ctx, n.pub(), c.hint, body)
			for _, w := range c.want {
				if !errors.Is(err, w) {
					t.Fatalf("SubmitStream: %v, want %v", err, w)
				}
			}
			if left := spillFiles(t, l); len(left) != 0 {
				t.Fatalf("spill files left: %v", left)
			}
		})
	}
	// The round is still open, and the good stream is taken.
	if _, err := l.SubmitStream(ctx, n.pub(), StreamHint{"r", 1, int64(len(good))}, bytes.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	tc.waitRound(0, "r", 1, RoundClosed)
	if _, err := l.SubmitStream(ctx, n.pub(), StreamHint{"r", 1, int64(len(good))}, bytes.NewReader(good)); err != nil {
		t.Fatalf("retry after the close: %v, want the original ack", err)
	}
}

// blockingReader yields b once release is closed.
type blockingReader struct {
	started chan struct{}
	release chan struct{}
	r       io.Reader
	once    bool
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if !b.once {
		b.once = true
		close(b.started)
		<-b.release
	}
	return b.r.Read(p)
}

// TestSubmitStreamSpillBudget: the streams a member receives at once are
// bounded by bytes; one beyond the budget is rate limited before a byte
// is read, and the budget is given back when a stream ends.
func TestSubmitStreamSpillBudget(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 1, clusterOpts{})
	nodes := newTestNodes(t, 2, 33)
	tc.enroll(nodes)
	l := tc.members[0]
	ctx := context.Background()
	const dim = 5_000
	if _, err := l.CreateJob(ctx, testSpec("b", dim, 2, 2)); err != nil {
		t.Fatal(err)
	}
	tc.waitRound(0, "b", 1, RoundOpen)
	base := ModelHash(make(Params, dim))
	s0 := nodes[0].sealStream(t, tc.keys, "b", 1, base, make([]float64, dim))
	s1 := nodes[1].sealStream(t, tc.keys, "b", 1, base, make([]float64, dim))
	l.spillLimit = int64(len(s0)) + int64(len(s1))/2 // room for one stream
	br := &blockingReader{started: make(chan struct{}), release: make(chan struct{}), r: bytes.NewReader(s0)}
	done := make(chan error, 1)
	go func() {
		_, err := l.SubmitStream(ctx, nodes[0].pub(), StreamHint{"b", 1, int64(len(s0))}, br)
		done <- err
	}()
	<-br.started
	_, err := l.SubmitStream(ctx, nodes[1].pub(), StreamHint{"b", 1, int64(len(s1))}, failReader{t})
	var rl *RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter <= 0 {
		t.Fatalf("second stream over the budget: %v, want rate limited", err)
	}
	close(br.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := l.SubmitStream(ctx, nodes[1].pub(), StreamHint{"b", 1, int64(len(s1))}, bytes.NewReader(s1)); err != nil {
		t.Fatalf("after the first stream ended: %v", err)
	}
	if n := l.spillBytes.Load(); n != 0 {
		t.Fatalf("%d bytes of the budget still taken", n)
	}
}
