package load

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"

	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/protocol"
)

// streamAbove is the encoded update size above which a virtual node
// streams its update (protocol.SubmitStream) instead of sealing it in
// memory and sending one frame: what no longer fits a frame with its
// envelope.
const streamAbove = protocol.DefaultMaxFrameSize - 64<<10

// streamedUpdateBytes is what a streamed update in flight costs: the
// sealer's and the stream writer's chunk buffers and what the transport
// holds unacknowledged, about 4 MiB.
const streamedUpdateBytes = 4 << 20

// streamed reports whether updates of dim values are streamed (on a
// session that can).
func streamed(dim int) bool { return int64(crypto.UpdateHeaderLen)+4*int64(dim) > streamAbove }

// prepare returns how to send a's update: for a small update, the sealed
// envelope held in memory and sent in one frame; for one above
// streamAbove (an error if the session cannot stream), a sender that generates
// the update twice from its seed, once to hash it for the statement and
// once while sealing it into the stream, so an update in flight takes
// memory for a few 64 KiB chunks whatever its size. size is the sealed
// envelope's size in bytes.
func (v *vnode) prepare(a *protocol.RoundAnnouncement, stmt *crypto.Statement) (send func(context.Context, *protocol.Client) (*protocol.Ack, error), size int, err error) {
	e := v.e
	signer := ed25519.PrivateKey(v.id.SigningKey)
	n := int64(crypto.UpdateHeaderLen) + 4*int64(e.cfg.Dim)
	if streamed(e.cfg.Dim) && (v.client == nil || !v.client.CanStream()) {
		// A frame cannot carry it, and building it whole would break
		// the in-flight memory budget.
		return nil, 0, fmt.Errorf("load: an update of dim %d needs a streaming (protocol version 4) cluster", e.cfg.Dim)
	}
	if !streamed(e.cfg.Dim) {
		upd := crypto.EncodeUpdate(updateValues(e.cfg.Seed, v.idx, a.Round, e.cfg.Dim, v.byz, e.cfg.Attack), crypto.Float32)
		sealed, err := crypto.Seal(stmt, upd, signer, e.tgt.Cluster.Recipients())
		if err != nil {
			return nil, 0, err
		}
		return func(ctx context.Context, c *protocol.Client) (*protocol.Ack, error) {
			return c.SubmitSealed(ctx, a.JobID, a.Round, sealed)
		}, len(sealed), nil
	}
	gen := func() io.Reader { return newUpdateReader(e.cfg.Seed, v.idx, a.Round, e.cfg.Dim, v.byz, e.cfg.Attack) }
	h, _, err := crypto.HashUpdate(gen())
	if err != nil {
		return nil, 0, err
	}
	stmt.UpdateHash = h
	probe, err := crypto.NewStreamSealer(stmt, n, signer, e.tgt.Cluster.Recipients())
	if err != nil {
		return nil, 0, err
	}
	return func(ctx context.Context, c *protocol.Client) (*protocol.Ack, error) {
		// A sealer writes once: each try seals afresh (same statement,
		// new age file key).
		s, err := crypto.NewStreamSealer(stmt, n, signer, e.tgt.Cluster.Recipients())
		if err != nil {
			return nil, err
		}
		return c.SubmitStream(ctx, a.JobID, a.Round, s.Size(), func(w io.Writer) error {
			_, err := s.WriteTo(w, gen())
			return err
		})
	}, int(probe.Size()), nil
}

// updateReader yields crypto.EncodeUpdate(updateValues(...), Float32)
// without holding it: the header, then the values as the same random
// sequence produces them.
type updateReader struct {
	rng    *rand.Rand
	scale  float64
	left   int
	buf    []byte
	header []byte
}

func newUpdateReader(seed uint64, idx int, round uint64, dim int, byz bool, attack string) *updateReader {
	h := make([]byte, crypto.UpdateHeaderLen)
	copy(h, crypto.UpdateMagic)
	h[4] = crypto.UpdateVersion
	h[5] = byte(crypto.Float32)
	binary.LittleEndian.PutUint64(h[6:], uint64(dim))
	return &updateReader{rng: rand.New(rand.NewPCG(seed, uint64(idx)<<32^round)), scale: updateScale(byz, attack), left: dim, header: h}
}

func (r *updateReader) Read(p []byte) (int, error) {
	n := 0
	if len(r.header) > 0 {
		k := copy(p, r.header)
		r.header = r.header[k:]
		n += k
		p = p[k:]
	}
	if len(r.buf) > 0 {
		k := copy(p, r.buf)
		r.buf = r.buf[k:]
		n += k
		p = p[k:]
	}
	for len(p) >= 4 && r.left > 0 {
		binary.LittleEndian.PutUint32(p, math.Float32bits(float32(r.scale*(2*r.rng.Float64()-1))))
		p = p[4:]
		n += 4
		r.left--
	}
	if len(p) > 0 && len(p) < 4 && r.left > 0 && len(r.buf) == 0 {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(float32(r.scale*(2*r.rng.Float64()-1))))
		r.left--
		k := copy(p, b[:])
		n += k
		r.buf = append(r.buf[:0], b[k:]...)
	}
	if n == 0 && r.left == 0 && len(r.buf) == 0 && len(r.header) == 0 {
		return 0, io.EOF
	}
	return n, nil
}
