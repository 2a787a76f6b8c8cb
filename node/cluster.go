package node

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"filippo.io/age"

	"github.com/mfn/mfn/crypto"
)

// ErrClusterFile is wrapped by every error about a malformed cluster file.
var ErrClusterFile = errors.New("node: malformed cluster file")

// maxClusterFile bounds the size of a cluster file read from disk.
const maxClusterFile = 1 << 20

// Member is one coordinator as a node knows it: where to reach it over QUIC,
// the Ed25519 key its TLS certificate must carry (pinned), and the age
// recipient every update is sealed to.
type Member struct {
	ID        string
	QUICAddr  string
	PublicKey ed25519.PublicKey
	Recipient *age.X25519Recipient
}

// Cluster is everything a node must know about the coordinator cluster
// before it connects. It is usually read from a cluster file.
type Cluster struct {
	// Origin, when not empty, is the cluster origin the node expects in
	// the coordinators' Hello answer; a coordinator claiming another
	// origin is refused. Empty means the node takes the origin it is told
	// (the TLS pinning already proves it talks to the cluster).
	Origin  string
	Members []Member
}

// PinnedKeys returns the members' Ed25519 keys, in file order.
func (c *Cluster) PinnedKeys() []ed25519.PublicKey {
	keys := make([]ed25519.PublicKey, len(c.Members))
	for i, m := range c.Members {
		keys[i] = m.PublicKey
	}
	return keys
}

// Recipients returns the members' age recipients, in file order.
func (c *Cluster) Recipients() []age.Recipient {
	rs := make([]age.Recipient, len(c.Members))
	for i, m := range c.Members {
		rs[i] = m.Recipient
	}
	return rs
}

// Addrs returns the members' QUIC addresses, in file order.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Members))
	for i, m := range c.Members {
		addrs[i] = m.QUICAddr
	}
	return addrs
}

// Validate checks that the cluster has at least one member and that every
// member is complete, with unique ids, addresses and keys.
func (c *Cluster) Validate() error {
	if len(c.Members) == 0 {
		return fmt.Errorf("%w: no coordinator listed", ErrClusterFile)
	}
	ids, addrs, keys := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for i, m := range c.Members {
		switch {
		case m.ID == "" || strings.ContainsAny(m.ID, " \t#"):
			return fmt.Errorf("%w: coordinator %d: id %q must be non-empty without spaces or #", ErrClusterFile, i+1, m.ID)
		case len(m.PublicKey) != ed25519.PublicKeySize:
			return fmt.Errorf("%w: coordinator %s: public key has %d bytes, want %d", ErrClusterFile, m.ID, len(m.PublicKey), ed25519.PublicKeySize)
		case m.Recipient == nil:
			return fmt.Errorf("%w: coordinator %s: no age recipient", ErrClusterFile, m.ID)
		case ids[m.ID]:
			return fmt.Errorf("%w: coordinator id %s listed twice", ErrClusterFile, m.ID)
		case addrs[m.QUICAddr]:
			return fmt.Errorf("%w: address %s listed twice", ErrClusterFile, m.QUICAddr)
		case keys[string(m.PublicKey)]:
			return fmt.Errorf("%w: coordinator %s: public key listed twice", ErrClusterFile, m.ID)
		}
		if _, _, err := net.SplitHostPort(m.QUICAddr); err != nil {
			return fmt.Errorf("%w: coordinator %s: address %q is not host:port", ErrClusterFile, m.ID, m.QUICAddr)
		}
		ids[m.ID], addrs[m.QUICAddr], keys[string(m.PublicKey)] = true, true, true
	}
	return nil
}

// ParseCluster reads a cluster file:
//
//	# comments start with # and run to the end of the line
//	origin mfn.example/cluster-1
//	coordinator c1 10.0.0.1:4431 mfn-ed25519:<base64> age1...
//	coordinator c2 10.0.0.2:4431 mfn-ed25519:<base64> age1...
//
// Each "coordinator" line gives the member's id, its QUIC address
// (host:port, UDP), its Ed25519 public key as in its signing.pub, and its
// age recipient as in its age.pub. The optional "origin" line pins the
// cluster origin (the name of the audit log key). Errors wrap
// ErrClusterFile and name the line.
func ParseCluster(r io.Reader) (*Cluster, error) {
	c := &Cluster{}
	sc := bufio.NewScanner(io.LimitReader(r, maxClusterFile))
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		f := strings.Fields(s)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "origin":
			if len(f) != 2 {
				return nil, fmt.Errorf("%w: line %d: want \"origin NAME\"", ErrClusterFile, line)
			}
			if c.Origin != "" {
				return nil, fmt.Errorf("%w: line %d: origin given twice", ErrClusterFile, line)
			}
			c.Origin = f[1]
		case "coordinator":
			if len(f) != 5 {
				return nil, fmt.Errorf("%w: line %d: want \"coordinator ID HOST:PORT mfn-ed25519:KEY age1RECIPIENT\", got %d fields", ErrClusterFile, line, len(f))
			}
			pub, err := crypto.ParsePublicKey(f[3])
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: public key: %v", ErrClusterFile, line, err)
			}
			rcpt, err := age.ParseX25519Recipient(f[4])
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: age recipient: %v", ErrClusterFile, line, err)
			}
			c.Members = append(c.Members, Member{ID: f[1], QUICAddr: f[2], PublicKey: pub, Recipient: rcpt})
		default:
			return nil, fmt.Errorf("%w: line %d: unknown directive %q (want origin or coordinator)", ErrClusterFile, line, f[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %v", ErrClusterFile, line+1, err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// LoadCluster reads and parses the cluster file at path; the error names
// the file.
func LoadCluster(path string) (*Cluster, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseCluster(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Format renders c as a cluster file that ParseCluster reads back.
func (c *Cluster) Format() []byte {
	var b bytes.Buffer
	b.WriteString("# MFN cluster file: coordinator ID QUIC-ADDR ED25519-KEY AGE-RECIPIENT\n")
	if c.Origin != "" {
		fmt.Fprintf(&b, "origin %s\n", c.Origin)
	}
	for _, m := range c.Members {
		fmt.Fprintf(&b, "coordinator %s %s %s %s\n", m.ID, m.QUICAddr, crypto.FormatPublicKey(m.PublicKey), m.Recipient)
	}
	return b.Bytes()
}
