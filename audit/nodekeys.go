package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/mfn/mfn/crypto"
	"golang.org/x/mod/sumdb/note"
)

// maxNodeKeysLen bounds a node keys file: about 100,000 enrolled nodes.
const maxNodeKeysLen = 16 << 20

// ParseNodeKeys reads an auditor's list of enrolled node keys. Each line is
// either "<node id> <public key>" or just "<public key>", where the public
// key is in crypto.FormatPublicKey form ("mfn-ed25519:<base64>") and a
// missing node id defaults to crypto.NodeID(key); blank lines and lines
// starting with '#' are ignored. Errors wrap ErrMalformed (and name the
// line) for a bad key, a duplicate id or extra fields, or ErrTooLarge.
func ParseNodeKeys(r io.Reader) (NodeKeys, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxNodeKeysLen+1))
	if err != nil {
		return nil, fmt.Errorf("audit: node keys: %w", err)
	}
	if len(data) > maxNodeKeysLen {
		return nil, fmt.Errorf("audit: node keys exceed %d bytes: %w", maxNodeKeysLen, ErrTooLarge)
	}
	keys := NodeKeys{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		var id, key string
		switch len(fields) {
		case 1:
			key = fields[0]
		case 2:
			id, key = fields[0], fields[1]
		default:
			return nil, fmt.Errorf("audit: node keys line %d: want \"<node id> <public key>\": %w", n, ErrMalformed)
		}
		pub, err := crypto.ParsePublicKey(key)
		if err != nil {
			return nil, fmt.Errorf("audit: node keys line %d: %v: %w", n, err, ErrMalformed)
		}
		if id == "" {
			id = crypto.NodeID(pub)
		}
		if _, dup := keys[id]; dup {
			return nil, fmt.Errorf("audit: node keys line %d: node %q listed twice: %w", n, id, ErrMalformed)
		}
		keys[id] = pub
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit: node keys: %v: %w", err, ErrMalformed)
	}
	return keys, nil
}

// Format writes keys in the ParseNodeKeys format, one "<id> <key>" line
// per node, sorted by id.
func (keys NodeKeys) Format() []byte {
	ids := make([]string, 0, len(keys))
	for id := range keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b bytes.Buffer
	for _, id := range ids {
		fmt.Fprintf(&b, "%s %s\n", id, crypto.FormatPublicKey(keys[id]))
	}
	return b.Bytes()
}

// LogVerifierKey derives the verifier key string ("<name>+<hash>+<keydata>")
// that belongs to a signer key ("PRIVATE+KEY+<name>+<hash>+<keydata>", as
// GenerateLogKey returns), so a holder of only the secret key can publish
// the matching public key. Errors wrap ErrMalformed and never echo the key.
func LogVerifierKey(skey string) (string, error) {
	bad := fmt.Errorf("audit: log signer key is invalid: %w", ErrMalformed)
	s, err := note.NewSigner(strings.TrimSpace(skey))
	if err != nil {
		return "", bad
	}
	// keydata is base64 of the algorithm byte (1 = Ed25519) and the 32-byte
	// private seed (golang.org/x/mod/sumdb/note, "Generating Keys").
	// The name has no '+', but the base64 keydata may.
	parts := strings.SplitN(strings.TrimSpace(skey), "+", 5)
	if len(parts) != 5 {
		return "", bad
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", bad
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return "", bad
	}
	v, err := note.NewVerifier(vkey)
	if err != nil || v.KeyHash() != s.KeyHash() {
		return "", bad
	}
	return vkey, nil
}
