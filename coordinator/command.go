package coordinator

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Every Raft log entry the coordinator writes is a command:
//
//	byte 0     commandVersion
//	byte 1     command type
//	bytes 2..  JSON body of the type's struct (binary for add-update, see
//	           addUpdateCmd.appendBinary)
//
// encoding/json writes struct fields in declaration order and map keys
// sorted, floats in their shortest exact form and Params as base64 of the
// little-endian bytes, so one command value always encodes to the same
// bytes. Times are carried in the commands (the leader's clock when it
// proposed them); Apply never reads a clock.
const commandVersion = 1

// maxCommandSize bounds a command's size before decoding (a sealed update
// of 10⁶ float32 is about 4 MiB; models are bigger but come from the leader).
const maxCommandSize = 256 << 20

type commandType uint8

const (
	cmdRegisterMember commandType = iota + 1
	cmdRemoveMember
	cmdEnrollNode
	cmdRevokeNode
	cmdCreateJob
	cmdStopJob
	cmdOpenRound
	cmdAddUpdate
	cmdSealRound
	cmdCloseRound
	cmdFailRound
	cmdCheckpoint
	cmdDeleteJob
	cmdAttest
	cmdEvalReport // crosssite.go
	cmdBlobChunk  // blob.go
)

func (t commandType) String() string {
	switch t {
	case cmdRegisterMember:
		return "register-member"
	case cmdRemoveMember:
		return "remove-member"
	case cmdEnrollNode:
		return "enroll-node"
	case cmdRevokeNode:
		return "revoke-node"
	case cmdCreateJob:
		return "create-job"
	case cmdStopJob:
		return "stop-job"
	case cmdOpenRound:
		return "open-round"
	case cmdAddUpdate:
		return "add-update"
	case cmdSealRound:
		return "seal-round"
	case cmdCloseRound:
		return "close-round"
	case cmdFailRound:
		return "fail-round"
	case cmdCheckpoint:
		return "checkpoint"
	case cmdDeleteJob:
		return "delete-job"
	case cmdAttest:
		return "attest"
	case cmdEvalReport:
		return "eval-report"
	case cmdBlobChunk:
		return "blob-chunk"
	}
	return fmt.Sprintf("command(%d)", uint8(t))
}

// The command bodies.
type (
	registerMemberCmd struct {
		Member Member `json:"member"`
	}
	removeMemberCmd struct {
		ID string `json:"id"`
	}
	enrollNodeCmd struct {
		ID        string    `json:"id"`
		PublicKey []byte    `json:"public_key"`
		At        time.Time `json:"at"`
		// KeyUnique refuses a key another node holds or held (set by every
		// leader since keys are unique; entries without it, written
		// before, replay as they applied).
		KeyUnique bool `json:"key_unique,omitempty"`
	}
	revokeNodeCmd struct {
		ID string    `json:"id"`
		At time.Time `json:"at"`
	}
	createJobCmd struct {
		Spec JobSpec   `json:"spec"`
		At   time.Time `json:"at"`
		// NoiseMultiplier is the z a DP job uses: the leader solves it
		// from dp.target_epsilon once (resolveDP), so Apply never runs the
		// solver; zero for jobs without DP or with dp.noise_multiplier.
		NoiseMultiplier float64 `json:"noise_multiplier,omitempty"`
		// DPSecret is a central DP job's noise secret (resolveDP).
		DPSecret []byte `json:"dp_secret,omitempty"`
	}
	stopJobCmd struct {
		ID     string    `json:"id"`
		Reason string    `json:"reason"`
		At     time.Time `json:"at"`
		// Fail ends the job as failed rather than stopped (the leader's
		// refusal to open a round past a DP job's privacy budget).
		Fail bool `json:"fail,omitempty"`
	}
	openRoundCmd struct {
		Job          string    `json:"job"`
		Round        uint64    `json:"round"`
		BaseVersion  uint64    `json:"base_version"`
		BaseHash     Hash      `json:"base_hash"`
		OpenedAt     time.Time `json:"opened_at"`
		Deadline     time.Time `json:"deadline"`
		HardDeadline time.Time `json:"hard_deadline"`
		// SampleSeed, Sample and Population: a sampled job's round sample
		// (Round.SampleSeed); Apply recomputes them and refuses a
		// mismatch. Absent for jobs without node sampling.
		SampleSeed *Hash    `json:"sample_seed,omitempty"`
		Sample     []string `json:"sample,omitempty"`
		Population int      `json:"population,omitempty"`
	}
	addUpdateCmd struct {
		Job        string    `json:"job"`
		Round      uint64    `json:"round"`
		Node       string    `json:"node"`
		BaseHash   Hash      `json:"base_hash"`
		UpdateHash Hash      `json:"update_hash"`
		Samples    uint64    `json:"samples"`
		Statement  []byte    `json:"statement"`
		Signature  []byte    `json:"signature"`
		Sealed     []byte    `json:"sealed"`
		AcceptedAt time.Time `json:"accepted_at"`
		// Body names the sealed envelope committed before the entry as
		// blob chunks (blob.go; Sealed is then empty); nil for a framed
		// update and in entries written before blobs.
		Body *BlobRef `json:"body,omitempty"`
	}
	sealRoundCmd struct {
		Job   string    `json:"job"`
		Round uint64    `json:"round"`
		At    time.Time `json:"at"`
		// Attest (written by leaders with Config.AttestQuorum) makes the
		// round close only with a quorum of matching member derivations
		// (attest_quorum.go); entries without it close as before.
		Attest bool `json:"attest,omitempty"`
	}
	closeRoundCmd struct {
		Job   string `json:"job"`
		Round uint64 `json:"round"`
		// Updates is the number of updates the result was computed from; it
		// must equal the round's count, or the command is stale.
		Updates  int             `json:"updates"`
		Outcomes []updateOutcome `json:"outcomes"`
		Model    Params          `json:"model"`
		Result   RoundResult     `json:"result"`
		At       time.Time       `json:"at"`
		// ResultLeaf is the encoded audit result leaf (audit.ResultLeaf)
		// appended to the log with the result; empty when the leader does
		// not attest rounds (Config.MemberKey nil) and in entries written
		// before result leaves existed.
		ResultLeaf []byte `json:"result_leaf,omitempty"`
		// ClipStep is the adaptive clipping step of a job with
		// dp.adaptive_clip (required there, refused elsewhere); Apply sets
		// the job's clip to ClipStep.Next.
		ClipStep *ClipStep `json:"clip_step,omitempty"`
		// Aggregate is, for a job with a server optimizer, the round's
		// aggregate, from which every replica computes the optimizer's
		// step and the new model (Model is then empty); see optimizer.go.
		Aggregate Params `json:"aggregate,omitempty"`
		// ModelBlob and AggregateBlob name Model or Aggregate committed
		// before the entry as blob chunks of their little-endian float64
		// bytes (blob.go) when those exceed blobThreshold; the field they
		// replace is then empty. Apply reads them back and removes them.
		ModelBlob     *BlobRef `json:"model_blob,omitempty"`
		AggregateBlob *BlobRef `json:"aggregate_blob,omitempty"`
	}
	failRoundCmd struct {
		Job    string    `json:"job"`
		Round  uint64    `json:"round"`
		Reason string    `json:"reason"`
		At     time.Time `json:"at"`
	}
	// deleteJobCmd ends a job (its open round fails) and frees its models:
	// archived, the job and its rounds stay with model hashes only;
	// deleted, the job leaves the state and its id is never reused (audit
	// leaves keep naming it).
	deleteJobCmd struct {
		ID      string    `json:"id"`
		Archive bool      `json:"archive"`
		Reason  string    `json:"reason"`
		At      time.Time `json:"at"`
	}
	checkpointCmd struct {
		// Note is the signed checkpoint (audit.SignCheckpoint).
		Note []byte `json:"note"`
	}
)

// Add-update commands are the bulk of the log (one per accepted update,
// each carrying a sealed envelope), so their body is binary rather than
// JSON; all integers big-endian:
//
//	job          uint16 length || bytes
//	round        uint64
//	node         uint16 length || bytes
//	base hash    [32]byte
//	update hash  [32]byte
//	samples      uint64
//	statement    uint32 length || bytes
//	signature    uint32 length || bytes
//	sealed       uint32 length || bytes
//	accepted at  int64 Unix nanoseconds (UTC)
//	body         optional: [32]byte SHA-256 || uint64 size (Body; absent
//	             when nil, as in every entry written before blobs)
//
// Decoding is strict: every length is checked against what remains and
// nothing may follow the last field.
func (c *addUpdateCmd) appendBinary(b []byte) ([]byte, error) {
	if len(c.Job) > 0xffff || len(c.Node) > 0xffff || len(c.Statement) > 1<<20 || len(c.Signature) > 1<<20 || int64(len(c.Sealed)) > maxCommandSize {
		return nil, fmt.Errorf("coordinator: encode add-update: field too long")
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.Job)))
	b = append(b, c.Job...)
	b = binary.BigEndian.AppendUint64(b, c.Round)
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.Node)))
	b = append(b, c.Node...)
	b = append(b, c.BaseHash[:]...)
	b = append(b, c.UpdateHash[:]...)
	b = binary.BigEndian.AppendUint64(b, c.Samples)
	for _, f := range [][]byte{c.Statement, c.Signature, c.Sealed} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(c.AcceptedAt.UnixNano()))
	if c.Body != nil {
		b = append(b, c.Body.SHA256[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(c.Body.Size))
	}
	return b, nil
}

func (c *addUpdateCmd) unmarshalBinary(b []byte) error {
	r := binReader{b: b}
	c.Job = string(r.bytes(int(r.u16())))
	c.Round = r.u64()
	c.Node = string(r.bytes(int(r.u16())))
	copy(c.BaseHash[:], r.bytes(32))
	copy(c.UpdateHash[:], r.bytes(32))
	c.Samples = r.u64()
	c.Statement = r.bytes(int(r.u32()))
	c.Signature = r.bytes(int(r.u32()))
	c.Sealed = r.bytes(int(r.u32()))
	c.AcceptedAt = time.Unix(0, int64(r.u64())).UTC()
	if r.err == nil && len(r.b) == 32+8 {
		var ref BlobRef
		copy(ref.SHA256[:], r.bytes(32))
		size := r.u64()
		if size == 0 || size > maxBlobSize {
			return fmt.Errorf("body of %d bytes", size)
		}
		ref.Size = int64(size)
		c.Body = &ref
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	return r.err
}

// binReader reads big-endian fields, remembering the first error (a read
// past the end yields zeros and an error, never a panic).
type binReader struct {
	b   []byte
	err error
}

func (r *binReader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = fmt.Errorf("field of %d bytes, %d remain", n, len(r.b))
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *binReader) u16() uint16 {
	if b := r.bytes(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *binReader) u32() uint32 {
	if b := r.bytes(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *binReader) u64() uint64 {
	if b := r.bytes(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// updateOutcome is the rule's verdict on one update of a closing round, in
// the round's update order.
type updateOutcome struct {
	Used   bool     `json:"used"`
	Reason string   `json:"reason,omitempty"`
	Score  *float64 `json:"score,omitempty"`
}

// ErrMalformedCommand is returned when a log entry cannot be decoded.
var ErrMalformedCommand = errors.New("coordinator: malformed command")

// encodeCommand returns the entry bytes of a command.
func encodeCommand(t commandType, body any) ([]byte, error) {
	if c, ok := body.(*blobChunkCmd); ok {
		if t != cmdBlobChunk {
			return nil, fmt.Errorf("coordinator: encode %v with a blob-chunk body", t)
		}
		return c.appendBinary([]byte{commandVersion, byte(t)})
	}
	if u, ok := body.(*addUpdateCmd); ok {
		if t != cmdAddUpdate {
			return nil, fmt.Errorf("coordinator: encode %v with an add-update body", t)
		}
		return u.appendBinary([]byte{commandVersion, byte(t)})
	}
	var buf bytes.Buffer
	buf.WriteByte(commandVersion)
	buf.WriteByte(byte(t))
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		return nil, fmt.Errorf("coordinator: encode %v: %w", t, err)
	}
	return buf.Bytes(), nil
}

// decodeCommand splits entry bytes into type and body, and decodes the
// body strictly (unknown fields and trailing data are errors).
func decodeCommand(b []byte) (commandType, any, error) {
	if len(b) < 2 {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrMalformedCommand, len(b))
	}
	if len(b) > maxCommandSize {
		return 0, nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformedCommand, len(b), maxCommandSize)
	}
	if b[0] != commandVersion {
		return 0, nil, fmt.Errorf("%w: version %d, want %d", ErrMalformedCommand, b[0], commandVersion)
	}
	t := commandType(b[1])
	var body any
	switch t {
	case cmdRegisterMember:
		body = new(registerMemberCmd)
	case cmdRemoveMember:
		body = new(removeMemberCmd)
	case cmdEnrollNode:
		body = new(enrollNodeCmd)
	case cmdRevokeNode:
		body = new(revokeNodeCmd)
	case cmdCreateJob:
		body = new(createJobCmd)
	case cmdStopJob:
		body = new(stopJobCmd)
	case cmdOpenRound:
		body = new(openRoundCmd)
	case cmdAddUpdate:
		body = new(addUpdateCmd)
	case cmdSealRound:
		body = new(sealRoundCmd)
	case cmdCloseRound:
		body = new(closeRoundCmd)
	case cmdFailRound:
		body = new(failRoundCmd)
	case cmdCheckpoint:
		body = new(checkpointCmd)
	case cmdDeleteJob:
		body = new(deleteJobCmd)
	case cmdAttest:
		body = new(Attestation)
	case cmdEvalReport:
		body = new(evalReportCmd)
	case cmdBlobChunk:
		body = new(blobChunkCmd)
	default:
		return 0, nil, fmt.Errorf("%w: unknown type %d", ErrMalformedCommand, b[1])
	}
	if u, ok := body.(*addUpdateCmd); ok {
		if err := u.unmarshalBinary(b[2:]); err != nil {
			return 0, nil, fmt.Errorf("%w: %v: %v", ErrMalformedCommand, t, err)
		}
		return t, body, nil
	}
	if c, ok := body.(*blobChunkCmd); ok {
		if err := c.unmarshalBinary(b[2:]); err != nil {
			return 0, nil, fmt.Errorf("%w: %v: %v", ErrMalformedCommand, t, err)
		}
		return t, body, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b[2:]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(body); err != nil {
		return 0, nil, fmt.Errorf("%w: %v: %v", ErrMalformedCommand, t, err)
	}
	if dec.More() {
		return 0, nil, fmt.Errorf("%w: %v: trailing data", ErrMalformedCommand, t)
	}
	return t, body, nil
}
