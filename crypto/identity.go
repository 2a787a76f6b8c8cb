package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
)

// Role is what an identity is for.
type Role string

// The roles. Every role has an Ed25519 signing key; coordinators also have
// an age X25519 identity that envelopes are sealed to.
const (
	RoleNode        Role = "node"
	RoleCoordinator Role = "coordinator"
)

// Roles returns the valid roles, for flag help and error messages.
func Roles() []Role { return []Role{RoleNode, RoleCoordinator} }

// ParseRole returns the Role named s, or an error listing the valid roles.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles() {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown role %q (want node or coordinator)", s)
}

// Key file names inside an identity directory.
const (
	SigningKeyFile = "signing.key" // PEM "PRIVATE KEY" (PKCS #8 Ed25519), mode 0600
	SigningPubFile = "signing.pub" // one line: FormatPublicKey of the signing key
	AgeKeyFile     = "age.key"     // age identity file (AGE-SECRET-KEY-1…), mode 0600, coordinators only
	AgePubFile     = "age.pub"     // one line: the age1… recipient, coordinators only
)

// PublicKeyPrefix introduces the text form of an Ed25519 public key.
const PublicKeyPrefix = "mfn-ed25519:"

// FormatPublicKey returns "mfn-ed25519:" followed by the standard base64
// (RFC 4648, padded) of the 32-byte key.
func FormatPublicKey(pub ed25519.PublicKey) string {
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey parses FormatPublicKey's output (surrounding white space
// is ignored). Anything else fails with an error wrapping ErrMalformed.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, PublicKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("public key %q: missing %q prefix: %w", s, PublicKeyPrefix, ErrMalformed)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("public key %q: %v: %w", s, err, ErrMalformed)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key %q: %d bytes, want %d: %w", s, len(b), ed25519.PublicKeySize, ErrMalformed)
	}
	return ed25519.PublicKey(b), nil
}

// NodeID derives a node's id from its public key: the first 12 bytes of
// SHA-256("mfn/node-id/v1\x00" || pub) in lowercase hex (24 characters).
// Ids are names, not proofs: Open always checks the signature under the key
// enrolled for the id.
func NodeID(pub ed25519.PublicKey) string {
	h := sha256.New()
	h.Write([]byte("mfn/node-id/v1\x00"))
	h.Write(pub)
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// Identity is one party's key material.
type Identity struct {
	Role       Role
	SigningKey ed25519.PrivateKey
	// Age decrypts envelopes; set for coordinators, nil for nodes.
	Age *age.X25519Identity
}

// PublicKey returns the Ed25519 public key.
func (id *Identity) PublicKey() ed25519.PublicKey {
	return id.SigningKey.Public().(ed25519.PublicKey)
}

// NodeID returns NodeID(id.PublicKey()).
func (id *Identity) NodeID() string { return NodeID(id.PublicKey()) }

// Recipient returns the age recipient envelopes are sealed to, or nil for a
// node.
func (id *Identity) Recipient() *age.X25519Recipient {
	if id.Age == nil {
		return nil
	}
	return id.Age.Recipient()
}

// Public returns the identity's public half.
func (id *Identity) Public() *PublicIdentity {
	return &PublicIdentity{Role: id.Role, SigningKey: id.PublicKey(), Recipient: id.Recipient()}
}

// GenerateIdentity creates a new identity for role. The Ed25519 key's seed
// is read from rand (pass crypto/rand.Reader; tests pass a fixed stream);
// a coordinator's age identity comes from age.GenerateX25519Identity, which
// always uses the operating system's generator.
func GenerateIdentity(role Role, rand io.Reader) (*Identity, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	id := &Identity{Role: role, SigningKey: priv}
	if role == RoleCoordinator {
		if id.Age, err = age.GenerateX25519Identity(); err != nil {
			return nil, fmt.Errorf("generate age identity: %w", err)
		}
	}
	return id, nil
}

// SaveIdentity writes id's key files into dir (created with mode 0700 if
// missing): private files with mode 0600, public files with mode 0644. It
// never replaces a file: if any of the files exists it writes nothing and
// returns an error wrapping fs.ErrExist that names the file. Each file is
// written to a temporary name, synced, and then linked into place, so a
// crash leaves either no file or a complete one.
func SaveIdentity(dir string, id *Identity) error {
	if id == nil || len(id.SigningKey) != ed25519.PrivateKeySize {
		return errors.New("save identity: no signing key")
	}
	if (id.Role == RoleCoordinator) != (id.Age != nil) {
		return fmt.Errorf("save identity: role %q with age identity %v", id.Role, id.Age != nil)
	}
	der, err := x509.MarshalPKCS8PrivateKey(id.SigningKey)
	if err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	type file struct {
		name string
		data []byte
		mode fs.FileMode
	}
	files := []file{
		{SigningKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600},
		{SigningPubFile, []byte(FormatPublicKey(id.PublicKey()) + "\n"), 0o644},
	}
	if id.Age != nil {
		rcpt := id.Age.Recipient().String()
		files = append(files,
			file{AgeKeyFile, []byte("# public key: " + rcpt + "\n" + id.Age.String() + "\n"), 0o600},
			file{AgePubFile, []byte(rcpt + "\n"), 0o644})
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("save identity: %s already exists, refusing to overwrite: %w", p, fs.ErrExist)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("save identity: %w", err)
		}
	}
	for _, f := range files {
		if err := writeNew(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("save identity: %w", err)
		}
	}
	return nil
}

// writeNew atomically creates path with data and mode; it fails with
// fs.ErrExist if path exists.
func writeNew(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// Link, unlike rename, fails if path exists.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists, refusing to overwrite: %w", path, fs.ErrExist)
		}
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// LoadIdentity reads the identity SaveIdentity wrote in dir. The role is
// coordinator if age.key exists, node otherwise. Private key files must not
// be readable by group or others. Public files, if present, must match the
// private keys. Errors wrap fs.ErrNotExist for a missing signing key,
// ErrMalformed for unparsable or inconsistent files.
func LoadIdentity(dir string) (*Identity, error) {
	data, err := readPrivate(filepath.Join(dir, SigningKeyFile))
	if err != nil {
		return nil, err
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%s: not a single PEM PRIVATE KEY block: %w", filepath.Join(dir, SigningKeyFile), ErrMalformed)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", filepath.Join(dir, SigningKeyFile), err, ErrMalformed)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: %T is not an Ed25519 key: %w", filepath.Join(dir, SigningKeyFile), key, ErrMalformed)
	}
	id := &Identity{Role: RoleNode, SigningKey: priv}

	agePath := filepath.Join(dir, AgeKeyFile)
	data, err = readPrivate(agePath)
	switch {
	case err == nil:
		ids, err := age.ParseIdentities(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %v: %w", agePath, err, ErrMalformed)
		}
		if len(ids) != 1 {
			return nil, fmt.Errorf("%s: %d identities, want exactly one: %w", agePath, len(ids), ErrMalformed)
		}
		x, ok := ids[0].(*age.X25519Identity)
		if !ok {
			return nil, fmt.Errorf("%s: want exactly one X25519 identity: %w", agePath, ErrMalformed)
		}
		id.Role, id.Age = RoleCoordinator, x
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}

	pub, err := loadPublic(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err == nil {
		want := id.Public()
		if !pub.SigningKey.Equal(want.SigningKey) {
			return nil, fmt.Errorf("%s does not match %s: %w", filepath.Join(dir, SigningPubFile), SigningKeyFile, ErrMalformed)
		}
		if (pub.Recipient == nil) != (want.Recipient == nil) ||
			(pub.Recipient != nil && pub.Recipient.String() != want.Recipient.String()) {
			return nil, fmt.Errorf("%s does not match %s: %w", filepath.Join(dir, AgePubFile), AgeKeyFile, ErrMalformed)
		}
	}
	return id, nil
}

// readPrivate reads a private key file, refusing one that group or others
// may read.
func readPrivate(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %v lets others read a private key; chmod 600 it", path, st.Mode().Perm())
	}
	return io.ReadAll(io.LimitReader(f, 64<<10))
}

// PublicIdentity is the shareable half of an Identity.
type PublicIdentity struct {
	Role       Role
	SigningKey ed25519.PublicKey
	Recipient  *age.X25519Recipient // coordinators only
}

// NodeID returns NodeID(p.SigningKey).
func (p *PublicIdentity) NodeID() string { return NodeID(p.SigningKey) }

// LoadPublicIdentity reads only the public files of an identity directory
// (signing.pub and, for a coordinator, age.pub). Errors wrap fs.ErrNotExist
// if signing.pub is missing and ErrMalformed for unparsable files.
func LoadPublicIdentity(dir string) (*PublicIdentity, error) { return loadPublic(dir) }

func loadPublic(dir string) (*PublicIdentity, error) {
	path := filepath.Join(dir, SigningPubFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pub, err := ParsePublicKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p := &PublicIdentity{Role: RoleNode, SigningKey: pub}
	path = filepath.Join(dir, AgePubFile)
	data, err = os.ReadFile(path)
	switch {
	case err == nil:
		r, err := age.ParseX25519Recipient(strings.TrimSpace(string(data)))
		if err != nil {
			return nil, fmt.Errorf("%s: %v: %w", path, err, ErrMalformed)
		}
		p.Role, p.Recipient = RoleCoordinator, r
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	return p, nil
}
