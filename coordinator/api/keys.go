package api

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// Role is what an API key may do. Roles are ordered: each includes every
// right of the roles before it (reader < auditor < operator < admin).
type Role int

// The roles, weakest first.
const (
	// RoleReader reads jobs, rounds, models, nodes, the cluster status and
	// the event stream, and may call the compute endpoints.
	RoleReader Role = iota + 1
	// RoleAuditor adds the audit endpoints (checkpoints, proofs, leaves).
	RoleAuditor
	// RoleOperator adds the writes on nodes and jobs.
	RoleOperator
	// RoleAdmin adds cluster membership (join, remove).
	RoleAdmin
)

var roleNames = map[Role]string{RoleReader: "reader", RoleAuditor: "auditor", RoleOperator: "operator", RoleAdmin: "admin"}

// String returns the role's name ("reader", …), or "role(N)" for an
// invalid role.
func (r Role) String() string {
	if s, ok := roleNames[r]; ok {
		return s
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// ParseRole returns the role named s (case-insensitive), or ErrBadKeys.
func ParseRole(s string) (Role, error) {
	for r, name := range roleNames {
		if strings.EqualFold(strings.TrimSpace(s), name) {
			return r, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown role %q (want admin, operator, auditor or reader)", ErrBadKeys, s)
}

// MarshalText encodes the role's name.
func (r Role) MarshalText() ([]byte, error) {
	if _, ok := roleNames[r]; !ok {
		return nil, fmt.Errorf("%w: invalid role %d", ErrBadKeys, int(r))
	}
	return []byte(r.String()), nil
}

// UnmarshalText decodes a role name.
func (r *Role) UnmarshalText(b []byte) error {
	v, err := ParseRole(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// ErrBadKeys marks an invalid API key definition (file, list or Key).
var ErrBadKeys = errors.New("api: invalid API keys")

// MinKeyLen is the shortest secret a key may have (bytes). Sixteen random
// characters of base64 carry 96 bits, beyond guessing over HTTP.
const MinKeyLen = 16

// Key defines one API key. Exactly one of Secret and SHA256 is set: the
// secret itself, or the hex SHA-256 of it (so a key file need not hold
// secrets in the clear).
type Key struct {
	// Name identifies the key in logs and rate limits; empty means
	// "<role>-<position>".
	Name string `json:"name" toml:"name"`
	// Role is what the key may do.
	Role Role `json:"role" toml:"role"`
	// Secret is the key as clients send it in X-API-Key (≥ MinKeyLen bytes).
	Secret string `json:"key,omitempty" toml:"key"`
	// SHA256 is the lowercase or uppercase hex SHA-256 of the secret.
	SHA256 string `json:"key_sha256,omitempty" toml:"key_sha256"`
}

type keyEntry struct {
	digest [sha256.Size]byte
	name   string
	role   Role
}

// Identity is the key a request authenticated with: its name and role.
type Identity struct {
	Name string
	Role Role
}

// KeyStore holds the API keys as SHA-256 digests. The zero KeyStore and
// a nil *KeyStore hold no key (every request is refused). It is immutable
// after construction and safe for concurrent use.
type KeyStore struct {
	entries []keyEntry
}

// NewKeyStore validates keys and builds a store. Errors wrap ErrBadKeys and
// name the key's position: both or neither of Secret and SHA256, a short
// secret, a malformed digest, an invalid role, a duplicate name or secret.
func NewKeyStore(keys []Key) (*KeyStore, error) {
	ks := &KeyStore{}
	names := map[string]bool{}
	digests := map[[sha256.Size]byte]bool{}
	for i, k := range keys {
		if _, ok := roleNames[k.Role]; !ok {
			return nil, fmt.Errorf("%w: key %d: missing or invalid role", ErrBadKeys, i+1)
		}
		var e keyEntry
		switch {
		case k.Secret != "" && k.SHA256 != "":
			return nil, fmt.Errorf("%w: key %d: set key or key_sha256, not both", ErrBadKeys, i+1)
		case k.Secret != "":
			if len(k.Secret) < MinKeyLen {
				return nil, fmt.Errorf("%w: key %d: %d bytes, need at least %d", ErrBadKeys, i+1, len(k.Secret), MinKeyLen)
			}
			e.digest = sha256.Sum256([]byte(k.Secret))
		case k.SHA256 != "":
			b, err := hex.DecodeString(k.SHA256)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("%w: key %d: key_sha256 must be 64 hex digits", ErrBadKeys, i+1)
			}
			copy(e.digest[:], b)
		default:
			return nil, fmt.Errorf("%w: key %d: set key or key_sha256", ErrBadKeys, i+1)
		}
		e.role = k.Role
		e.name = k.Name
		if e.name == "" {
			e.name = fmt.Sprintf("%s-%d", k.Role, i+1)
		}
		if names[e.name] {
			return nil, fmt.Errorf("%w: key %d: duplicate name %q", ErrBadKeys, i+1, e.name)
		}
		if digests[e.digest] {
			return nil, fmt.Errorf("%w: key %d (%s): the same secret appears twice", ErrBadKeys, i+1, e.name)
		}
		names[e.name], digests[e.digest] = true, true
		ks.entries = append(ks.entries, e)
	}
	return ks, nil
}

// Len returns the number of keys.
func (ks *KeyStore) Len() int {
	if ks == nil {
		return 0
	}
	return len(ks.entries)
}

// Lookup returns the identity of the key whose secret is presented. It
// hashes the presented secret and compares it with every stored digest in
// constant time, visiting all of them whatever matches, so the time taken
// says nothing about which key (or how much of one) matched.
func (ks *KeyStore) Lookup(presented string) (Identity, bool) {
	if ks == nil || presented == "" {
		return Identity{}, false
	}
	d := sha256.Sum256([]byte(presented))
	found := -1
	for i := range ks.entries {
		eq := subtle.ConstantTimeCompare(d[:], ks.entries[i].digest[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return Identity{}, false
	}
	e := ks.entries[found]
	return Identity{Name: e.name, Role: e.role}, true
}

// keyFile is the TOML shape of a key file: [[keys]] tables.
type keyFile struct {
	Keys []Key `toml:"keys" json:"keys"`
}

// ParseKeyFile parses a key file's content. JSON is either an array of
// keys or an object {"keys": [...]}; TOML is a list of [[keys]] tables.
// Each key has "name", "role" and one of "key" and "key_sha256":
//
//	[{"name": "ops", "role": "operator", "key": "…"},
//	 {"name": "ci", "role": "reader", "key_sha256": "9f86d0…"}]
//
//	[[keys]]
//	name = "ops"
//	role = "operator"
//	key  = "…"
//
// Unknown fields are rejected. Errors wrap ErrBadKeys.
func ParseKeyFile(data []byte) (*KeyStore, error) {
	trimmed := bytes.TrimSpace(data)
	var keys []Key
	switch {
	case len(trimmed) > 0 && trimmed[0] == '[' && (len(trimmed) < 2 || trimmed[1] != '['):
		// A JSON array (TOML files open with "[[keys]]" or a key).
		if err := decodeStrict(trimmed, &keys); err != nil {
			return nil, fmt.Errorf("%w: JSON: %v", ErrBadKeys, err)
		}
	case len(trimmed) > 0 && trimmed[0] == '{':
		var f keyFile
		if err := decodeStrict(trimmed, &f); err != nil {
			return nil, fmt.Errorf("%w: JSON: %v", ErrBadKeys, err)
		}
		keys = f.Keys
	default:
		var f keyFile
		md, err := toml.Decode(string(data), &f)
		if err != nil {
			return nil, fmt.Errorf("%w: TOML: %v", ErrBadKeys, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			return nil, fmt.Errorf("%w: TOML: unknown key %q", ErrBadKeys, und[0].String())
		}
		keys = f.Keys
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no keys defined", ErrBadKeys)
	}
	return NewKeyStore(keys)
}

// LoadKeyFile reads and parses a key file (see ParseKeyFile). A file that
// group or others may read and that holds plain secrets is refused: chmod
// it 600, or store key_sha256 digests instead.
func LoadKeyFile(path string) (*KeyStore, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("api: key file: %w", err)
	}
	if st.Size() > 1<<20 {
		return nil, fmt.Errorf("%w: %s: larger than 1 MiB", ErrBadKeys, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("api: key file: %w", err)
	}
	ks, err := ParseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 && hasPlainSecret(data) {
		return nil, fmt.Errorf("%w: %s: mode %v lets others read API keys; chmod 600 it or use key_sha256", ErrBadKeys, path, st.Mode().Perm())
	}
	return ks, nil
}

// hasPlainSecret reports whether a parsed-valid key file defines a
// secret in the clear (any "key" field).
func hasPlainSecret(data []byte) bool {
	var f keyFile
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '[' && (len(trimmed) < 2 || trimmed[1] != '[') {
		_ = json.Unmarshal(trimmed, &f.Keys)
	} else if len(trimmed) > 0 && trimmed[0] == '{' {
		_ = json.Unmarshal(trimmed, &f)
	} else {
		_, _ = toml.Decode(string(data), &f)
	}
	for _, k := range f.Keys {
		if k.Secret != "" {
			return true
		}
	}
	return false
}

// ParseKeyList parses the inline form "role:key,role:key,…" (as in the
// MFN_API_KEYS environment variable). Keys are named "<role>-<position>".
// White space around items is ignored. Errors wrap ErrBadKeys and never
// repeat a secret.
func ParseKeyList(s string) (*KeyStore, error) {
	var keys []Key
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		roleName, secret, ok := strings.Cut(item, ":")
		if !ok {
			return nil, fmt.Errorf("%w: item %d: want role:key", ErrBadKeys, i+1)
		}
		role, err := ParseRole(roleName)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i+1, err)
		}
		keys = append(keys, Key{Role: role, Secret: secret})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no keys in list", ErrBadKeys)
	}
	return NewKeyStore(keys)
}

// LoadKeys loads keys from the value of a --api-keys flag or the
// MFN_API_KEYS variable: an inline list when every comma-separated item
// starts with a role name and a colon ("admin:…,reader:…"), otherwise the
// path of a key file.
func LoadKeys(value string) (*KeyStore, error) {
	if looksLikeKeyList(value) {
		return ParseKeyList(value)
	}
	if value == "" {
		return nil, fmt.Errorf("%w: empty key source", ErrBadKeys)
	}
	return LoadKeyFile(filepath.Clean(value))
}

func looksLikeKeyList(s string) bool {
	items := strings.Split(s, ",")
	n := 0
	for _, it := range items {
		it = strings.TrimSpace(it)
		if it == "" {
			continue
		}
		r, _, ok := strings.Cut(it, ":")
		if !ok {
			return false
		}
		if _, err := ParseRole(r); err != nil {
			return false
		}
		n++
	}
	return n > 0
}
