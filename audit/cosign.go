package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// Cosignatures (C2SP tlog-cosignature, https://c2sp.org/tlog-cosignature,
// Ed25519 "cosignature/v1"). A member attests a round by cosigning the
// signed checkpoint that covers the round's result leaf: it adds one note
// signature line
//
//	— <member id> base64(key ID || timestamp || signature)
//
// where key ID is SHA-256(<member id> || "\n" || 0x04 || 32-byte Ed25519
// public key)[:4], timestamp a big-endian uint64 of POSIX seconds (at most
// 2^63−1), and signature the Ed25519 signature over
//
//	cosignature/v1\n
//	time <timestamp in decimal>\n
//	<the checkpoint body: origin, size, root, extension lines>
//
// Besides the cosignature/v1 statement (this is the largest consistent
// tree the member has seen), an MFN member's cosignature states: "I
// re-derived every round result in this tree that I took part in and got
// the recorded model". The signed message does not commit to the name, so
// one key must cosign under one name only.

// cosignatureAlg is the key ID algorithm byte of Ed25519 cosignatures.
const cosignatureAlg = 0x04

// maxCosignatureLines bounds the signature lines examined in one note.
const maxCosignatureLines = 1024

// MemberKeys maps coordinator member ids to their Ed25519 public keys (the
// keys they cosign with). Its text form is ParseNodeKeys's.
type MemberKeys = NodeKeys

// CosignatureKeyID returns the 4-byte key ID of an Ed25519 cosigner.
func CosignatureKeyID(name string, pub ed25519.PublicKey) [4]byte {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', cosignatureAlg})
	h.Write(pub)
	return [4]byte(h.Sum(nil))
}

// cosignedMessage is the message an Ed25519 cosignature signs.
func cosignedMessage(body []byte, ts uint64) []byte {
	m := make([]byte, 0, 32+len(body))
	m = append(m, "cosignature/v1\ntime "...)
	m = strconv.AppendUint(m, ts, 10)
	m = append(m, '\n')
	return append(m, body...)
}

// validKeyName reports whether name can name a note signature: non-empty
// UTF-8 without spaces, control characters or '+'.
func validKeyName(name string) bool {
	return name != "" && utf8.ValidString(name) && !strings.ContainsFunc(name, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == '+'
	})
}

// splitNote splits a signed note into its body (ending in "\n") and its
// signature lines. Errors wrap ErrMalformed or ErrTooLarge.
func splitNote(msg []byte) (body []byte, sigs []string, err error) {
	if len(msg) > MaxCheckpointLen {
		return nil, nil, fmt.Errorf("audit: note is %d bytes, limit %d: %w", len(msg), MaxCheckpointLen, ErrTooLarge)
	}
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 || i+2 >= len(msg) || msg[len(msg)-1] != '\n' {
		return nil, nil, fmt.Errorf("audit: note has no signature block: %w", ErrMalformed)
	}
	lines := strings.Split(string(msg[i+2:len(msg)-1]), "\n")
	if len(lines) > maxCosignatureLines {
		return nil, nil, fmt.Errorf("audit: note has %d signature lines, limit %d: %w", len(lines), maxCosignatureLines, ErrTooLarge)
	}
	return msg[:i+1], lines, nil
}

// CosignCheckpoint returns a member's cosignature line ("— name base64\n")
// over a signed checkpoint note. It first checks the note: signed by the
// log's verifier and well formed (ParseCheckpoint's errors). ts is the
// signing time (POSIX seconds; before 1970 fails with ErrMalformed); name
// must be a valid note key name (ErrMalformed) and key an Ed25519 private
// key (ErrMalformed).
func CosignCheckpoint(signed []byte, verifier note.Verifier, name string, key ed25519.PrivateKey, ts time.Time) ([]byte, error) {
	if !validKeyName(name) {
		return nil, fmt.Errorf("audit: cosigner name %q: %w", name, ErrMalformed)
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("audit: cosigner %s key is %d bytes: %w", name, len(key), ErrMalformed)
	}
	if ts.Unix() < 0 {
		return nil, fmt.Errorf("audit: cosignature time %v before 1970: %w", ts, ErrMalformed)
	}
	if _, err := ParseCheckpoint(signed, verifier); err != nil {
		return nil, err
	}
	body, _, err := splitNote(signed)
	if err != nil {
		return nil, err
	}
	sec := uint64(ts.Unix())
	id := CosignatureKeyID(name, key.Public().(ed25519.PublicKey))
	sig := ed25519.Sign(key, cosignedMessage(body, sec))
	raw := make([]byte, 0, 4+8+ed25519.SignatureSize)
	raw = append(raw, id[:]...)
	raw = binary.BigEndian.AppendUint64(raw, sec)
	raw = append(raw, sig...)
	return fmt.Appendf(nil, "— %s %s\n", name, base64.StdEncoding.EncodeToString(raw)), nil
}

// AddCosignatures appends cosignature lines (as CosignCheckpoint returns
// them, with or without the final newline) to a signed note, skipping a
// line the note already has. The result is still a valid note for the log
// verifier. Errors wrap ErrMalformed for a line that is not one signature
// line, or ErrTooLarge when the note would exceed MaxCheckpointLen.
func AddCosignatures(signed []byte, lines ...[]byte) ([]byte, error) {
	_, have, err := splitNote(signed)
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(signed)
	for _, l := range lines {
		s := strings.TrimSuffix(string(l), "\n")
		if !strings.HasPrefix(s, "— ") || strings.Contains(s, "\n") {
			return nil, fmt.Errorf("audit: not a signature line: %q: %w", s, ErrMalformed)
		}
		if slices.Contains(have, s) {
			continue
		}
		have = append(have, s)
		out = append(append(out, s...), '\n')
	}
	if len(out) > MaxCheckpointLen {
		return nil, fmt.Errorf("audit: cosigned note is %d bytes, limit %d: %w", len(out), MaxCheckpointLen, ErrTooLarge)
	}
	return out, nil
}

// Cosignature is one verified cosignature.
type Cosignature struct {
	Member string    // the member id (key name)
	Time   time.Time // the cosignature's timestamp (UTC, seconds)
}

// VerifyCosignatures returns the members of members that validly cosigned
// the signed note, sorted by id, each once (the earliest timestamp kept).
// Lines by other keys (the log key, unknown names, key IDs that do not
// match) are ignored, as the specification asks. A line with a member's
// name and key ID whose signature does not verify, or a timestamp over
// 2^63−1, fails with ErrBadCosignature: someone altered a cosigned
// checkpoint. The log's own signature is not checked here; use
// ParseCheckpoint. Errors also wrap ErrMalformed or ErrTooLarge for a note
// that is not one.
func VerifyCosignatures(signed []byte, members MemberKeys) ([]Cosignature, error) {
	body, lines, err := splitNote(signed)
	if err != nil {
		return nil, err
	}
	got := map[string]time.Time{}
	for _, line := range lines {
		rest, ok := strings.CutPrefix(line, "— ")
		if !ok {
			return nil, fmt.Errorf("audit: signature line %q: %w", line, ErrMalformed)
		}
		name, b64, ok := strings.Cut(rest, " ")
		pub, known := members[name]
		if !ok || !known {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		id := CosignatureKeyID(name, pub)
		if err != nil || len(raw) < 4 || !bytes.Equal(raw[:4], id[:]) {
			continue // another key of the same name
		}
		if len(raw) != 4+8+ed25519.SignatureSize {
			return nil, fmt.Errorf("audit: cosignature by %s is %d bytes: %w", name, len(raw), ErrBadCosignature)
		}
		ts := binary.BigEndian.Uint64(raw[4:])
		if ts > math.MaxInt64 {
			return nil, fmt.Errorf("audit: cosignature by %s has timestamp %d: %w", name, ts, ErrBadCosignature)
		}
		if !ed25519.Verify(pub, cosignedMessage(body, ts), raw[12:]) {
			return nil, fmt.Errorf("audit: cosignature by %s does not verify: %w", name, ErrBadCosignature)
		}
		t := time.Unix(int64(ts), 0).UTC()
		if prev, ok := got[name]; !ok || t.Before(prev) {
			got[name] = t
		}
	}
	out := make([]Cosignature, 0, len(got))
	for m, t := range got {
		out = append(out, Cosignature{Member: m, Time: t})
	}
	slices.SortFunc(out, func(a, b Cosignature) int { return strings.Compare(a.Member, b.Member) })
	return out, nil
}

// Quorum returns the number of members a majority needs: n/2 + 1.
func Quorum(members int) int { return members/2 + 1 }

// VerifyQuorum checks that a majority of members (Quorum(len(members)))
// validly cosigned the signed note and returns who did. It fails with
// ErrQuorum (naming how many of how many) or VerifyCosignatures's errors;
// with no members at all it fails with ErrQuorum.
func VerifyQuorum(signed []byte, members MemberKeys) ([]Cosignature, error) {
	cs, err := VerifyCosignatures(signed, members)
	if err != nil {
		return nil, err
	}
	if len(members) == 0 || len(cs) < Quorum(len(members)) {
		return cs, fmt.Errorf("audit: %d of %d members cosigned, quorum is %d: %w", len(cs), len(members), Quorum(len(members)), ErrQuorum)
	}
	return cs, nil
}
