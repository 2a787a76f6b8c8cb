package protocol

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mfn/mfn/protocol/internal/wire"
)

var update = flag.Bool("update", false, "rewrite testdata/messages.golden")

// sampleMessages are fixed messages covering every type and field; their
// encodings are frozen in testdata/messages.golden.
func sampleMessages() []struct {
	name string
	m    Message
} {
	var h [32]byte
	for i := range h {
		h[i] = byte(i)
	}
	return []struct {
		name string
		m    Message
	}{
		{"Hello", &Hello{Versions: []uint8{1, 2}, NodeID: "node-7", ClientInfo: "mfn/0.1"}},
		{"HelloAck", &HelloAck{Version: 1, Supported: []uint8{1}, ClusterOrigin: "mfn.example/cluster-a", LeaderHint: "10.0.0.1:7443"}},
		{"HelloAckMismatch", &HelloAck{Supported: []uint8{1}}},
		{"HelloAckV2", &HelloAck{Version: 2, Supported: []uint8{1, 2}, ClusterOrigin: "mfn.example/cluster-a", LeaderHint: "10.0.0.1:7443",
			Instance: "0123456789abcdef", Term: 12}},
		{"Subscribe", &subscribe{}},
		{"RoundAnnouncement", &RoundAnnouncement{JobID: "job-1", Round: 4, BaseVersion: 3, BaseHash: h,
			Deadline: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), ModelSize: 304, MinUpdates: 3, MaxUpdates: 10,
			Metadata: map[string]string{"task": "mfn-regime", "epochs": "2"}}},
		{"RoundAnnouncementNoDeadline", &RoundAnnouncement{JobID: "j"}},
		{"Heartbeat", &heartbeat{Interval: 10 * time.Second}},
		{"ModelFetch", &ModelFetch{JobID: "job-1", Version: 3, Offset: 1 << 20, Length: 1 << 20}},
		{"ModelChunk", &ModelChunk{Offset: 4, Total: 10, Hash: h, Data: []byte{1, 2, 3}}},
		{"SubmitUpdate", &SubmitUpdate{Sealed: []byte("age-encryption.org/v1\n")}},
		{"SubmitUpdateTraced", &SubmitUpdate{Sealed: []byte("age-encryption.org/v1\n"),
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
		{"Ack", &Ack{LogIndex: 42, LeafIndex: 7}},
		{"ErrorNotLeader", &ProtocolError{Code: CodeNotLeader, Message: "follower", LeaderAddr: "10.0.0.2:7443"}},
		{"ErrorRateLimited", &ProtocolError{Code: CodeRateLimited, RetryAfter: 1500 * time.Millisecond}},
		{"ErrorNotReady", &ProtocolError{Code: CodeNotReady, Message: "catching up", RetryAfter: 250 * time.Millisecond}},
		{"SubmitEval", &SubmitEval{Report: []byte("eval-report"), Signature: append(h[:], h[:]...)}},
		{"SubmitStream", &SubmitStream{JobID: "job-1", Round: 4, Size: 100_000_123}},
		{"SubmitStreamTraced", &SubmitStream{JobID: "job-1", Round: 4, Size: 9,
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
		{"StreamChunk", &StreamChunk{Data: []byte{9, 8, 7}}},
	}
}

const goldenPath = "testdata/messages.golden"

// TestGoldenEncodings freezes the wire format: each sample encodes to the
// recorded bytes and those bytes decode back to the same message.
func TestGoldenEncodings(t *testing.T) {
	var out strings.Builder
	got := map[string]string{}
	for _, s := range sampleMessages() {
		b, err := s.m.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		fr, _ := frameOf(1, s.m)
		got[s.name] = hex.EncodeToString(fr)
		fmt.Fprintf(&out, "%s %s\n", s.name, got[s.name])

		// Decoding gives the same message back.
		m2, err := decodeMessage(s.m.wireType(), b)
		if err != nil {
			t.Fatalf("%s: decode: %v", s.name, err)
		}
		if !equalMsg(t, m2, s.m) {
			t.Fatalf("%s: round trip changed the message", s.name)
		}
	}
	if *update {
		if err := os.WriteFile(goldenPath, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		name, hx, _ := strings.Cut(sc.Text(), " ")
		if got[name] != hx {
			t.Errorf("%s: encoding changed:\n got %s\nwant %s", name, got[name], hx)
		}
		n++
	}
	if n != len(got) {
		t.Fatalf("golden file has %d vectors, samples %d (run with -update after an intended change)", n, len(got))
	}
}

// TestDecodeRejectsEveryPrefix: every strict prefix of a valid encoding is
// truncated, and any extra byte is trailing.
func TestDecodeRejectsEveryPrefix(t *testing.T) {
	for _, s := range sampleMessages() {
		b, _ := s.m.MarshalBinary()
		for i := range len(b) {
			m, err := decodeMessage(s.m.wireType(), b[:i])
			if su, ok := m.(*SubmitUpdate); ok && err == nil && su.TraceParent == "" && s.name == "SubmitUpdateTraced" {
				continue // the prefix without the optional field is a plain SubmitUpdate
			}
			if ss, ok := m.(*SubmitStream); ok && err == nil && ss.TraceParent == "" && s.name == "SubmitStreamTraced" {
				continue // likewise for SubmitStream
			}
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("%s: prefix %d/%d: %v, want ErrTruncated", s.name, i, len(b), err)
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.Message != s.m.wireType().String() {
				t.Fatalf("%s: error %v is not a DecodeError naming the message", s.name, err)
			}
		}
		_, err := decodeMessage(s.m.wireType(), append(bytes.Clone(b), 0))
		if s.name == "SubmitUpdate" || s.name == "SubmitStream" {
			// An extra byte starts the optional trace_parent field.
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("%s: extra byte: %v, want ErrTruncated", s.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrTrailingBytes) {
			t.Fatalf("%s: trailing byte: %v", s.name, err)
		}
	}
}

func TestDecodeStrict(t *testing.T) {
	u32 := func(n uint32) []byte { return wire.AppendU32(nil, n) }
	str := func(s string) []byte { return append(u32(uint32(len(s))), s...) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	zero := func(n int) []byte { return make([]byte, n) }
	cases := []struct {
		name string
		t    wire.Type
		b    []byte
		want error
	}{
		{"hello node id too long", wire.TypeHello, cat([]byte{1, 1}, str(strings.Repeat("n", MaxNameLen+1)), str("")), ErrFieldTooLong},
		{"hello huge length, no data", wire.TypeHello, cat([]byte{0}, u32(0xffffffff)), ErrFieldTooLong},
		{"hello too many versions", wire.TypeHello, cat([]byte{MaxVersions + 1}, zero(MaxVersions+1)), ErrFieldTooLong},
		{"hello unsorted versions", wire.TypeHello, cat([]byte{2, 2, 1}, str(""), str("")), ErrNonCanonical},
		{"hello duplicate versions", wire.TypeHello, cat([]byte{2, 1, 1}, str(""), str("")), ErrNonCanonical},
		{"hello invalid utf-8", wire.TypeHello, cat([]byte{1, 1}, str("\xff"), str("")), ErrNonCanonical},
		{"announcement unsorted keys", wire.TypeRoundAnnouncement,
			cat(str("j"), zero(8+8+32+8+8+4+4), []byte{0, 2}, str("b"), str(""), str("a"), str("")), ErrNonCanonical},
		{"announcement duplicate keys", wire.TypeRoundAnnouncement,
			cat(str("j"), zero(8+8+32+8+8+4+4), []byte{0, 2}, str("a"), str(""), str("a"), str("")), ErrNonCanonical},
		{"announcement too many entries", wire.TypeRoundAnnouncement,
			cat(str("j"), zero(8+8+32+8+8+4+4), []byte{0, MaxMetadata + 1}), ErrFieldTooLong},
		{"announcement key too long", wire.TypeRoundAnnouncement,
			cat(str("j"), zero(8+8+32+8+8+4+4), []byte{0, 1}, str(strings.Repeat("k", MaxMetaKeyLen+1)), str("")), ErrFieldTooLong},
		{"error negative retry", wire.TypeError, cat([]byte{0, 6}, str(""), str(""), []byte{0x80, 0, 0, 0, 0, 0, 0, 0}), ErrNonCanonical},
		{"error message too long", wire.TypeError, cat([]byte{0, 6}, str(strings.Repeat("m", MaxErrorMsgLen+1))), ErrFieldTooLong},
		{"heartbeat zero", wire.TypeHeartbeat, zero(8), ErrNonCanonical},
		{"subscribe with payload", wire.TypeSubscribe, []byte{0}, ErrTrailingBytes},
		{"chunk data length beyond payload", wire.TypeModelChunk, cat(zero(8+8+32), u32(10), []byte{1}), ErrTruncated},
		{"unknown type", 0, nil, ErrUnknownType},
		{"unknown type 12", 12, nil, ErrUnknownType},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeMessage(tc.t, tc.b)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("%v is not a *DecodeError", err)
			}
		})
	}
}

func TestMarshalRejectsInvalid(t *testing.T) {
	cases := []struct {
		name string
		m    Message
		want error
	}{
		{"node id too long", &Hello{Versions: []uint8{1}, NodeID: strings.Repeat("x", MaxNameLen+1)}, ErrFieldTooLong},
		{"unsorted versions", &Hello{Versions: []uint8{2, 1}}, ErrNonCanonical},
		{"invalid utf-8", &HelloAck{ClusterOrigin: "\xc3"}, ErrNonCanonical},
		{"job id too long", &ModelFetch{JobID: strings.Repeat("j", MaxJobIDLen+1)}, ErrFieldTooLong},
		{"too much metadata", &RoundAnnouncement{Metadata: func() map[string]string {
			m := map[string]string{}
			for i := range MaxMetadata + 1 {
				m[fmt.Sprint(i)] = ""
			}
			return m
		}()}, ErrFieldTooLong},
		{"deadline out of range", &RoundAnnouncement{Deadline: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}, ErrNonCanonical},
		{"negative retry", &ProtocolError{Code: CodeRateLimited, RetryAfter: -1}, ErrNonCanonical},
		{"zero heartbeat", &heartbeat{}, ErrNonCanonical},
	}
	for _, tc := range cases {
		if _, err := tc.m.MarshalBinary(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestErrorCodes(t *testing.T) {
	pe := &ProtocolError{Code: CodeNotLeader, LeaderAddr: "10.0.0.2:7443", Message: "m"}
	wrapped := fmt.Errorf("submit: %w", pe)
	if !errors.Is(wrapped, CodeNotLeader) || errors.Is(wrapped, CodeDuplicate) {
		t.Fatal("errors.Is against codes")
	}
	if !errors.Is(wrapped, &ProtocolError{Code: CodeNotLeader}) {
		t.Fatal("errors.Is against a ProtocolError target")
	}
	if got := pe.Error(); got != "protocol: not leader (leader 10.0.0.2:7443): m" {
		t.Fatalf("Error() = %q", got)
	}
	if Code(77).String() != "code(77)" || CodeRateLimited.String() != "rate limited" {
		t.Fatal("Code.String")
	}
	vm := &VersionMismatchError{Client: []uint8{2}, Server: []uint8{1}}
	if !errors.Is(vm, ErrVersionMismatch) || errors.Is(vm, CodeNotLeader) {
		t.Fatal("VersionMismatchError.Is")
	}
	if pe := toProtocolError(errors.New("secret path /x")); pe.Code != CodeInternal || strings.Contains(pe.Message, "secret") {
		t.Fatalf("internal error leaked: %+v", pe)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	cases := []struct {
		c     Config
		field string
	}{
		{Config{MaxFrameSize: -1}, "MaxFrameSize"},
		{Config{MaxFrameSize: 100}, "MaxFrameSize"},
		{Config{RequestTimeout: -time.Second}, "RequestTimeout"},
		{Config{MaxStreamsPerConn: -1}, "MaxStreamsPerConn"},
		{Config{ChunkSize: DefaultMaxFrameSize}, "ChunkSize"},
		{Config{MaxFrameSize: 4096, ChunkSize: 4096 - chunkOverhead + 1}, "ChunkSize"},
		{Config{Versions: []uint8{1, 1}}, "Versions"},
		{Config{Versions: []uint8{5}}, "Versions"},
		{Config{MaxConns: -1}, "MaxConns"},
		{Config{MaxConnsPerKey: -1}, "MaxConnsPerKey"},
		{Config{Instance: strings.Repeat("x", MaxInstanceLen+1)}, "Instance"},
		{Config{MaxModelSize: -1}, "MaxModelSize"},
	}
	for _, tc := range cases {
		err := tc.c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: %v, want an error naming %s", tc.c, err, tc.field)
		}
	}
	d := Config{MaxFrameSize: 4096}.withDefaults()
	if d.ChunkSize != 4096-chunkOverhead {
		t.Fatalf("default ChunkSize for a small frame = %d", d.ChunkSize)
	}
	// Largest chunk must fit the frame exactly.
	fr, err := frameOf(1, &ModelChunk{Data: make([]byte, d.ChunkSize)})
	if err != nil || len(fr) != 4096+wire.HeaderSize {
		t.Fatalf("full chunk frame = %d bytes, %v", len(fr), err)
	}
}

func TestHeartbeatTimeoutBounded(t *testing.T) {
	cases := []struct {
		in, want time.Duration
	}{
		{time.Second, 3 * time.Second},
		{20 * time.Minute, time.Hour},
		{time.Duration(1 << 62), time.Hour},
		{time.Duration(1<<63 - 1), time.Hour},
		{0, time.Hour},
		{-time.Second, time.Hour},
	}
	for _, c := range cases {
		if got := heartbeatTimeout(c.in); got != c.want {
			t.Errorf("heartbeatTimeout(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
