package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Every Raft log entry the coordinator writes is a command:
//
//	byte 0     commandVersion
//	byte 1     command type
//	bytes 2..  JSON body of the type's struct
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
	}
	revokeNodeCmd struct {
		ID string    `json:"id"`
		At time.Time `json:"at"`
	}
	createJobCmd struct {
		Spec JobSpec   `json:"spec"`
		At   time.Time `json:"at"`
	}
	stopJobCmd struct {
		ID     string    `json:"id"`
		Reason string    `json:"reason"`
		At     time.Time `json:"at"`
	}
	openRoundCmd struct {
		Job          string    `json:"job"`
		Round        uint64    `json:"round"`
		BaseVersion  uint64    `json:"base_version"`
		BaseHash     Hash      `json:"base_hash"`
		OpenedAt     time.Time `json:"opened_at"`
		Deadline     time.Time `json:"deadline"`
		HardDeadline time.Time `json:"hard_deadline"`
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
	}
	sealRoundCmd struct {
		Job   string    `json:"job"`
		Round uint64    `json:"round"`
		At    time.Time `json:"at"`
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
	}
	failRoundCmd struct {
		Job    string    `json:"job"`
		Round  uint64    `json:"round"`
		Reason string    `json:"reason"`
		At     time.Time `json:"at"`
	}
	checkpointCmd struct {
		// Note is the signed checkpoint (audit.SignCheckpoint).
		Note []byte `json:"note"`
	}
)

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
	default:
		return 0, nil, fmt.Errorf("%w: unknown type %d", ErrMalformedCommand, b[1])
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
