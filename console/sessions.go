package console

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/mfn/mfn/coordinator/api"
)

// secretLen is the number of random bytes of a session id, a CSRF token
// and a login token (256 bits).
const secretLen = 32

// newSecret reads secretLen bytes from rnd and encodes them base64url.
func newSecret(rnd io.Reader) (string, error) {
	b := make([]byte, secretLen)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return "", fmt.Errorf("console: random source: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// digest is how secrets are kept at rest: a session id or a login token
// is stored only as its SHA-256, so a dump of the store cannot be replayed
// as a cookie or a link.
func digest(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }

// session is one browser login. key is the API key the user presented;
// the console sends it on the user's behalf as X-API-Key, so the API
// applies exactly that key's role and rate limit.
type session struct {
	key     string
	ident   api.Identity
	csrf    string
	created time.Time
	expires time.Time
}

// grant is a pending one-time login token.
type grant struct {
	key     string
	ident   api.Identity
	created time.Time
	expires time.Time
}

// store is a bounded map of secrets (by digest) to values with an
// expiry. When full, expired entries are dropped first, then the oldest
// entry: the store never holds more than max entries.
type store[V any] struct {
	mu      sync.Mutex
	max     int
	entries map[[sha256.Size]byte]*entry[V]
}

type entry[V any] struct {
	v       V
	created time.Time
	expires time.Time
}

func newStore[V any](max int) *store[V] {
	return &store[V]{max: max, entries: make(map[[sha256.Size]byte]*entry[V])}
}

// put stores v under secret until expires.
func (s *store[V]) put(secret string, v V, now, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.entries) >= s.max {
		s.pruneLocked(now)
	}
	for len(s.entries) >= s.max {
		var oldest [sha256.Size]byte
		var ot time.Time
		first := true
		for k, e := range s.entries {
			if first || e.created.Before(ot) {
				oldest, ot, first = k, e.created, false
			}
		}
		delete(s.entries, oldest)
	}
	s.entries[digest(secret)] = &entry[V]{v: v, created: now, expires: expires}
}

func (s *store[V]) pruneLocked(now time.Time) {
	for k, e := range s.entries {
		if !now.Before(e.expires) {
			delete(s.entries, k)
		}
	}
}

// get returns the live value of secret.
func (s *store[V]) get(secret string, now time.Time) (V, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var zero V
	if secret == "" {
		return zero, false
	}
	d := digest(secret)
	e, ok := s.entries[d]
	if !ok {
		return zero, false
	}
	if !now.Before(e.expires) {
		delete(s.entries, d)
		return zero, false
	}
	return e.v, true
}

// take returns the live value of secret and removes it (one use).
func (s *store[V]) take(secret string, now time.Time) (V, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var zero V
	if secret == "" {
		return zero, false
	}
	d := digest(secret)
	e, ok := s.entries[d]
	if !ok {
		return zero, false
	}
	delete(s.entries, d)
	if !now.Before(e.expires) {
		return zero, false
	}
	return e.v, true
}

// remove deletes secret.
func (s *store[V]) remove(secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.entries, digest(secret))
}

// len returns the number of entries, expired ones included.
func (s *store[V]) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}
