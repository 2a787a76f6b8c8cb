package provision

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/crypto"
)

// StateDir is the folder, inside the output folder, where provisioning
// keeps the secrets it generated (mode 0700): the participants'
// identities, the audit log key and the API keys. Re-running reads them
// back, so the kits come out the same; losing it means new keys.
const StateDir = ".provision"

// secrets are the generated private values of a project.
type secrets struct {
	dir      string
	rand     io.Reader
	logSKey  string
	logVKey  string
	apiKeys  map[string]string // operator name -> secret
	idents   map[string]*crypto.Identity
	modified bool
}

type stateKeyFile struct {
	Keys []apiKeyEntry `toml:"keys"`
}

type apiKeyEntry struct {
	Name string `toml:"name"`
	Key  string `toml:"key"`
}

// loadSecrets reads the state folder under out, creating nothing.
func loadSecrets(out string, rand io.Reader) (*secrets, error) {
	s := &secrets{dir: filepath.Join(out, StateDir), rand: rand, apiKeys: map[string]string{}, idents: map[string]*crypto.Identity{}}
	skey, err := os.ReadFile(filepath.Join(s.dir, "log.skey"))
	switch {
	case err == nil:
		s.logSKey = strings.TrimSpace(string(skey))
		vkey, err := os.ReadFile(filepath.Join(s.dir, "log.vkey"))
		if err != nil {
			return nil, fmt.Errorf("provision: state: %w", err)
		}
		s.logVKey = strings.TrimSpace(string(vkey))
		if _, err := audit.NewLogSigner(s.logSKey); err != nil {
			return nil, fmt.Errorf("provision: state: log.skey: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("provision: state: %w", err)
	}
	data, err := os.ReadFile(filepath.Join(s.dir, "api-keys.toml"))
	switch {
	case err == nil:
		var f stateKeyFile
		md, err := toml.Decode(string(data), &f)
		if err != nil || len(md.Undecoded()) > 0 {
			return nil, fmt.Errorf("provision: state: api-keys.toml is malformed")
		}
		for _, k := range f.Keys {
			s.apiKeys[k.Name] = k.Key
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("provision: state: %w", err)
	}
	return s, nil
}

// logKey returns the audit log key pair for origin, generating it once.
func (s *secrets) logKey(origin string) (skey, vkey string, err error) {
	if s.logSKey != "" {
		if name, _, _ := strings.Cut(s.logVKey, "+"); name != origin {
			return "", "", fmt.Errorf("%w: origin %q differs from the log key already made for %q (%s); the origin cannot change", ErrProject, origin, name, filepath.Join(s.dir, "log.vkey"))
		}
		return s.logSKey, s.logVKey, nil
	}
	s.logSKey, s.logVKey, err = audit.GenerateLogKey(origin, s.rand)
	if err != nil {
		return "", "", err
	}
	s.modified = true
	return s.logSKey, s.logVKey, nil
}

// apiKey returns the generated API key of operator name, making it once.
func (s *secrets) apiKey(name string) (string, error) {
	if k, ok := s.apiKeys[name]; ok {
		return k, nil
	}
	b := make([]byte, 24)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("provision: API key for %s: %w", name, err)
	}
	k := base64.RawURLEncoding.EncodeToString(b)
	s.apiKeys[name] = k
	s.modified = true
	return k, nil
}

// identity returns the generated identity of participant key (e.g.
// "coordinators/c1"), reading it from the state folder or making it.
func (s *secrets) identity(key string, role crypto.Role) (*crypto.Identity, error) {
	if id, ok := s.idents[key]; ok {
		return id, nil
	}
	dir := filepath.Join(s.dir, "identities", filepath.FromSlash(key))
	id, err := crypto.LoadIdentity(dir)
	switch {
	case err == nil:
		if id.Role != role {
			return nil, fmt.Errorf("provision: state: %s holds a %s identity, want %s", dir, id.Role, role)
		}
	case errors.Is(err, fs.ErrNotExist):
		if id, err = crypto.GenerateIdentity(role, s.rand); err != nil {
			return nil, err
		}
		s.modified = true
	default:
		return nil, fmt.Errorf("provision: state: %w", err)
	}
	s.idents[key] = id
	return id, nil
}

// save writes what was generated since loadSecrets. Identities already on
// disk are left alone (crypto.SaveIdentity never overwrites).
func (s *secrets) save() error {
	if !s.modified {
		return nil
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("provision: state: %w", err)
	}
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return fmt.Errorf("provision: state: %w", err)
	}
	if s.logSKey != "" {
		if err := writeFile(filepath.Join(s.dir, "log.skey"), []byte(s.logSKey+"\n"), 0o600); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(s.dir, "log.vkey"), []byte(s.logVKey+"\n"), 0o644); err != nil {
			return err
		}
	}
	var f stateKeyFile
	for _, name := range sortedKeys(s.apiKeys) {
		f.Keys = append(f.Keys, apiKeyEntry{Name: name, Key: s.apiKeys[name]})
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(f); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(s.dir, "api-keys.toml"), buf.Bytes(), 0o600); err != nil {
		return err
	}
	for _, key := range sortedKeys(s.idents) {
		dir := filepath.Join(s.dir, "identities", filepath.FromSlash(key))
		if _, err := os.Stat(filepath.Join(dir, crypto.SigningKeyFile)); err == nil {
			continue
		}
		if err := crypto.SaveIdentity(dir, s.idents[key]); err != nil {
			return fmt.Errorf("provision: state: %w", err)
		}
	}
	s.modified = false
	return nil
}
