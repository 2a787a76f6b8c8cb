package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// MaxCheckpointLen bounds a signed checkpoint note read from a file or a
// bundle. A checkpoint is three short lines plus signature lines; 64 KiB
// leaves room for extension lines and many co-signatures.
const MaxCheckpointLen = 64 << 10

// Checkpoint is a log's signed commitment to its first Size leaves, in the
// C2SP tlog-checkpoint format (https://c2sp.org/tlog-checkpoint). The note
// body is
//
//	<origin>\n
//	<size in decimal, no leading zeros>\n
//	<base64 (standard, padded) of the 32-byte RFC 6962 root>\n
//	[<extension line>\n ...]
//
// and it travels inside a signed note (golang.org/x/mod/sumdb/note) signed
// by the cluster's log key.
type Checkpoint struct {
	Origin     string   // the log's identity; for MFN the cluster origin
	Size       uint64   // number of leaves committed to
	Root       [32]byte // RFC 6962 root of those leaves
	Extensions []string // optional extra lines, each non-empty, kept verbatim
}

// Body returns the checkpoint's note text. It fails with ErrMalformed for an
// empty origin or any line that is empty or contains a newline.
func (c *Checkpoint) Body() ([]byte, error) {
	if c.Origin == "" || strings.ContainsAny(c.Origin, "\n") || !utf8.ValidString(c.Origin) {
		return nil, fmt.Errorf("audit: checkpoint origin %q: %w", c.Origin, ErrMalformed)
	}
	var b bytes.Buffer
	b.WriteString(c.Origin)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatUint(c.Size, 10))
	b.WriteByte('\n')
	b.WriteString(base64.StdEncoding.EncodeToString(c.Root[:]))
	b.WriteByte('\n')
	for _, e := range c.Extensions {
		if e == "" || strings.ContainsAny(e, "\n") || !utf8.ValidString(e) {
			return nil, fmt.Errorf("audit: checkpoint extension line %q: %w", e, ErrMalformed)
		}
		b.WriteString(e)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// Sign returns the checkpoint as a signed note. Errors wrap ErrMalformed for
// an invalid checkpoint or a note the signer refuses.
func (c *Checkpoint) Sign(signer note.Signer) ([]byte, error) {
	body, err := c.Body()
	if err != nil {
		return nil, err
	}
	msg, err := note.Sign(&note.Note{Text: string(body)}, signer)
	if err != nil {
		return nil, fmt.Errorf("audit: sign checkpoint: %v: %w", err, ErrMalformed)
	}
	return msg, nil
}

// SignCheckpoint returns the signed note of the checkpoint {origin, size,
// root} without extension lines. root must be 32 bytes (ErrMalformed
// otherwise).
func SignCheckpoint(signer note.Signer, origin string, size uint64, root []byte) ([]byte, error) {
	if len(root) != 32 {
		return nil, fmt.Errorf("audit: checkpoint root is %d bytes, want 32: %w", len(root), ErrMalformed)
	}
	c := Checkpoint{Origin: origin, Size: size, Root: [32]byte(root)}
	return c.Sign(signer)
}

// ParseCheckpoint opens a signed checkpoint note, requiring a valid
// signature by verifier, and parses its body strictly (ParseCheckpointBody).
// Errors wrap ErrTooLarge (note over MaxCheckpointLen),
// ErrBadCheckpointSignature (no signature by verifier's key, or a bad one)
// or ErrMalformed (note syntax or body).
func ParseCheckpoint(msg []byte, verifier note.Verifier) (*Checkpoint, error) {
	if len(msg) > MaxCheckpointLen {
		return nil, fmt.Errorf("audit: checkpoint note is %d bytes, limit %d: %w", len(msg), MaxCheckpointLen, ErrTooLarge)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return nil, fmt.Errorf("audit: checkpoint note (key %s): %v: %w", verifier.Name(), err, ErrBadCheckpointSignature)
		}
		return nil, fmt.Errorf("audit: checkpoint note: %v: %w", err, ErrMalformed)
	}
	if err := checkCanonicalSignatures(msg); err != nil {
		return nil, err
	}
	return ParseCheckpointBody([]byte(n.Text))
}

// checkCanonicalSignatures requires every signature line of an opened note
// to use canonical base64 (the note package's decoder ignores the unused
// low bits of the last character, so one signature has several spellings).
// Canonical notes make equal checkpoints byte-identical.
func checkCanonicalSignatures(msg []byte) error {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return fmt.Errorf("audit: checkpoint note has no signature block: %w", ErrMalformed)
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(msg[i+2:]), "\n"), "\n") {
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			return fmt.Errorf("audit: checkpoint signature line %q: %w", line, ErrMalformed)
		}
		if _, err := base64.StdEncoding.Strict().DecodeString(line[sp+1:]); err != nil {
			return fmt.Errorf("audit: checkpoint signature line has non-canonical base64: %w", ErrMalformed)
		}
	}
	return nil
}

// ParseCheckpointBody parses an (unsigned) checkpoint body. The origin line
// must be non-empty, the size canonical decimal (no sign, no leading zeros,
// fits uint64), the root standard padded base64 of exactly 32 bytes, and
// every extension line non-empty; the text must be UTF-8 without control
// characters other than newlines and end with a newline. Errors wrap
// ErrMalformed.
func ParseCheckpointBody(text []byte) (*Checkpoint, error) {
	if len(text) > MaxCheckpointLen {
		return nil, fmt.Errorf("audit: checkpoint body is %d bytes: %w", len(text), ErrTooLarge)
	}
	if !utf8.Valid(text) || len(text) == 0 || text[len(text)-1] != '\n' {
		return nil, fmt.Errorf("audit: checkpoint body must be UTF-8 text ending in a newline: %w", ErrMalformed)
	}
	// As in signed notes, no control characters but newlines (this also
	// keeps '\r', which base64 decoders skip, out of the root line).
	if i := bytes.IndexFunc(text, func(r rune) bool { return r < 0x20 && r != '\n' }); i >= 0 {
		return nil, fmt.Errorf("audit: checkpoint body has a control character at byte %d: %w", i, ErrMalformed)
	}
	lines := strings.Split(string(text[:len(text)-1]), "\n")
	if len(lines) < 3 {
		return nil, fmt.Errorf("audit: checkpoint body has %d lines, want at least 3: %w", len(lines), ErrMalformed)
	}
	c := &Checkpoint{Origin: lines[0]}
	if c.Origin == "" {
		return nil, fmt.Errorf("audit: checkpoint origin line empty: %w", ErrMalformed)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return nil, fmt.Errorf("audit: checkpoint size line %q is not canonical decimal: %w", lines[1], ErrMalformed)
	}
	c.Size = size
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		return nil, fmt.Errorf("audit: checkpoint root line %q is not base64 of 32 bytes: %w", lines[2], ErrMalformed)
	}
	c.Root = [32]byte(root)
	for i, e := range lines[3:] {
		if e == "" {
			return nil, fmt.Errorf("audit: checkpoint extension line %d empty: %w", i+1, ErrMalformed)
		}
		c.Extensions = append(c.Extensions, e)
	}
	return c, nil
}

// GenerateLogKey creates a log signing key named name (use the cluster
// origin, e.g. "mfn.example/cluster-1"). skey is the secret
// "PRIVATE+KEY+<name>+<hash>+<keydata>" string to keep on the coordinators;
// vkey is the "<name>+<hash>+<keydata>" verifier key that auditors hold.
// Randomness comes from rand (crypto/rand.Reader in production, a seeded
// reader in tests). Errors wrap ErrMalformed for a name note rejects (empty,
// containing spaces or '+').
func GenerateLogKey(name string, rand io.Reader) (skey, vkey string, err error) {
	if name == "" || !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || r == '+' }) {
		return "", "", fmt.Errorf("audit: log key name %q must be non-empty UTF-8 without spaces or '+': %w", name, ErrMalformed)
	}
	skey, vkey, err = note.GenerateKey(rand, name)
	if err != nil {
		return "", "", fmt.Errorf("audit: generate log key %q: %v: %w", name, err, ErrMalformed)
	}
	return skey, vkey, nil
}

// NewLogVerifier parses a verifier key string ("<name>+<hash>+<keydata>",
// surrounding white space ignored). Errors wrap ErrMalformed.
func NewLogVerifier(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("audit: log verifier key: %v: %w", err, ErrMalformed)
	}
	return v, nil
}

// NewLogSigner parses a signer key string
// ("PRIVATE+KEY+<name>+<hash>+<keydata>", surrounding white space ignored).
// Errors wrap ErrMalformed and never echo the key.
func NewLogSigner(skey string) (note.Signer, error) {
	s, err := note.NewSigner(strings.TrimSpace(skey))
	if err != nil {
		return nil, fmt.Errorf("audit: log signer key is invalid: %w", ErrMalformed)
	}
	return s, nil
}
