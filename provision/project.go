package provision

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"

	"filippo.io/age"
	"github.com/BurntSushi/toml"

	"github.com/mfn/mfn/coordinator/api"
	"github.com/mfn/mfn/crypto"
)

// ErrProject is wrapped by every error about an invalid project file.
var ErrProject = errors.New("provision: invalid project")

// maxProjectFile bounds the project file read from disk.
const maxProjectFile = 1 << 20

// maxParticipants bounds each list of the project (coordinators, sites,
// operators): provisioning writes a kit per participant, and a Raft
// cluster of more than a handful of voters is a mistake anyway.
const maxParticipants = 10000

// HTTP TLS modes of the coordinators' operator API.
const (
	// HTTPSelfSigned serves HTTPS with a certificate self-signed by each
	// member's identity key; operator kits pin the members' keys.
	HTTPSelfSigned = "self-signed"
	// HTTPPlain serves plaintext HTTP on purpose (--http-insecure), for a
	// private network or behind a TLS-terminating proxy.
	HTTPPlain = "plain"
)

// Project is the content of project.toml: everything provisioning needs to
// write every participant's kit. See the package documentation for an
// example file.
type Project struct {
	// Origin names the cluster: the audit log key's name, which heads every
	// checkpoint and which nodes pin. Required.
	Origin string `toml:"origin"`
	// HTTPTLS is HTTPSelfSigned or HTTPPlain; empty means HTTPSelfSigned.
	HTTPTLS string `toml:"http_tls"`
	// InstallDir is the folder under which the kits are installed on their
	// machines (the kit of participant X goes to InstallDir/X); the
	// systemd units use it. Empty means /etc/mfn.
	InstallDir string `toml:"install_dir"`
	// Binary is the mfn command's path on the machines, for the systemd
	// units. Empty means /usr/local/bin/mfn.
	Binary string `toml:"binary"`
	// CoordinatorFlags and NodeFlags are extra flags (names without
	// dashes, TOML values) written into every coordinator's and node's
	// config file. A participant's own Flags override them.
	CoordinatorFlags map[string]any `toml:"coordinator_flags"`
	NodeFlags        map[string]any `toml:"node_flags"`

	Coordinators []Coordinator `toml:"coordinators"`
	Sites        []Site        `toml:"sites"`
	Operators    []Operator    `toml:"operators"`
}

// Coordinator is one member of the Raft cluster.
type Coordinator struct {
	// ID is the member id (--id). Required.
	ID string `toml:"id"`
	// Host is the address others dial: an IP or a DNS name. Required.
	Host string `toml:"host"`
	// Bind is the host to listen on; empty means Host. With a wildcard
	// ("0.0.0.0", "::") the kit advertises Host explicitly.
	Bind string `toml:"bind"`
	// RaftPort, QUICPort and HTTPPort are the member's ports; zero means
	// 7001, 4431 and 8081.
	RaftPort int `toml:"raft_port"`
	QUICPort int `toml:"quic_port"`
	HTTPPort int `toml:"http_port"`
	// PublicKey and AgeRecipient, when set ("bring your own keys"), are
	// the member's public keys as "mfn keygen --show" prints them: its
	// private keys were made on its own machine and never travel. Both or
	// neither. Empty means provisioning generates the member's keys.
	PublicKey    string `toml:"public_key"`
	AgeRecipient string `toml:"age_recipient"`
	// DataDir is the --data-dir in the kit's config, relative to the kit
	// folder unless absolute; empty means "data".
	DataDir string `toml:"data_dir"`
	// Flags are extra coordinator flags for this member.
	Flags map[string]any `toml:"flags"`
}

// Site is one data site running an edge node.
type Site struct {
	// ID is the node id the site is enrolled under. Required.
	ID string `toml:"id"`
	// PublicKey, when set, is the site's own signing key
	// ("mfn-ed25519:..."); empty means provisioning generates it.
	PublicKey string `toml:"public_key"`
	// StateDir is the --state-dir in the kit's config, relative to the kit
	// folder unless absolute; empty means "state".
	StateDir string `toml:"state_dir"`
	// Flags are extra node flags for this site (samples, regime-mix, …).
	Flags map[string]any `toml:"flags"`
}

// Operator is one holder of an operator API key.
type Operator struct {
	// Name identifies the key in the coordinators' logs. Required.
	Name string `toml:"name"`
	// Role is admin, operator, auditor or reader. Required.
	Role string `toml:"role"`
	// Server is the id of the coordinator the operator's mfn ctl config
	// points at; empty means the first coordinator.
	Server string `toml:"server"`
	// KeySHA256, when set, is the hex SHA-256 of a key the operator made
	// (bring your own): the kit then holds no secret and the operator adds
	// api-key to its ctl.toml. Empty means provisioning generates the key.
	KeySHA256 string `toml:"key_sha256"`
}

// Default ports of a coordinator.
const (
	DefaultRaftPort = 7001
	DefaultQUICPort = 4431
	DefaultHTTPPort = 8081
)

// ParseProject decodes and validates a project file. Unknown keys are
// refused. Errors wrap ErrProject and name the offending entry.
func ParseProject(data []byte) (*Project, error) {
	var p Project
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProject, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		// Keys under a flags table are flag names, decoded into maps.
		return nil, fmt.Errorf("%w: unknown key %q", ErrProject, und[0].String())
	}
	p.applyDefaults()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// LoadProject reads and parses the project file at path.
func LoadProject(path string) (*Project, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > maxProjectFile {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrProject, path, maxProjectFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := ParseProject(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

func (p *Project) applyDefaults() {
	if p.HTTPTLS == "" {
		p.HTTPTLS = HTTPSelfSigned
	}
	if p.InstallDir == "" {
		p.InstallDir = "/etc/mfn"
	}
	if p.Binary == "" {
		p.Binary = "/usr/local/bin/mfn"
	}
	for i := range p.Coordinators {
		c := &p.Coordinators[i]
		if c.RaftPort == 0 {
			c.RaftPort = DefaultRaftPort
		}
		if c.QUICPort == 0 {
			c.QUICPort = DefaultQUICPort
		}
		if c.HTTPPort == 0 {
			c.HTTPPort = DefaultHTTPPort
		}
		if c.DataDir == "" {
			c.DataDir = "data"
		}
	}
	for i := range p.Sites {
		if p.Sites[i].StateDir == "" {
			p.Sites[i].StateDir = "state"
		}
	}
	for i := range p.Operators {
		if p.Operators[i].Server == "" && len(p.Coordinators) > 0 {
			p.Operators[i].Server = p.Coordinators[0].ID
		}
	}
}

// idPattern is the id syntax the coordinator and the API accept.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Flags the kits set themselves; a project may not override them.
var (
	managedCoordinatorFlags = []string{"id", "identity", "log-key", "log-verifier", "peer-keys", "api-keys",
		"raft-addr", "raft-advertise", "quic-addr", "quic-advertise", "http-addr", "http-advertise",
		"http-tls-self-signed", "http-insecure", "bootstrap", "join", "config", "data-dir"}
	managedNodeFlags = []string{"id", "identity", "cluster", "state-dir", "config"}
)

// Validate checks the project after defaults: the origin, unique and
// well-formed ids, ports in range, distinct addresses, parsable
// bring-your-own keys, known roles and flag tables that do not override
// what the kits manage. Errors wrap ErrProject.
func (p *Project) Validate() error {
	if p.Origin == "" || strings.ContainsFunc(p.Origin, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '+' }) {
		return fmt.Errorf("%w: origin %q must be non-empty without spaces or '+'", ErrProject, p.Origin)
	}
	if p.HTTPTLS != HTTPSelfSigned && p.HTTPTLS != HTTPPlain {
		return fmt.Errorf("%w: http_tls %q: must be %q or %q", ErrProject, p.HTTPTLS, HTTPSelfSigned, HTTPPlain)
	}
	if !strings.HasPrefix(p.InstallDir, "/") {
		return fmt.Errorf("%w: install_dir %q must be an absolute path", ErrProject, p.InstallDir)
	}
	if !strings.HasPrefix(p.Binary, "/") {
		return fmt.Errorf("%w: binary %q must be an absolute path", ErrProject, p.Binary)
	}
	if len(p.Coordinators) == 0 {
		return fmt.Errorf("%w: no [[coordinators]]", ErrProject)
	}
	for _, n := range []int{len(p.Coordinators), len(p.Sites), len(p.Operators)} {
		if n > maxParticipants {
			return fmt.Errorf("%w: more than %d entries in a list", ErrProject, maxParticipants)
		}
	}
	names := map[string]string{} // kit folder names are shared by all kinds
	claim := func(kind, id string) error {
		if !idPattern.MatchString(id) {
			return fmt.Errorf("%w: %s id %q: want 1-64 characters of [A-Za-z0-9._-]", ErrProject, kind, id)
		}
		if id == "." || id == ".." {
			return fmt.Errorf("%w: %s id %q is not a folder name", ErrProject, kind, id)
		}
		if prev, ok := names[kind+"/"+id]; ok {
			return fmt.Errorf("%w: %s %q listed twice (also as %s)", ErrProject, kind, id, prev)
		}
		names[kind+"/"+id] = kind
		return nil
	}
	if err := checkFlags("coordinator_flags", p.CoordinatorFlags, managedCoordinatorFlags); err != nil {
		return err
	}
	if err := checkFlags("node_flags", p.NodeFlags, managedNodeFlags); err != nil {
		return err
	}
	addrs := map[string]string{}
	keys := map[string]string{}
	for _, c := range p.Coordinators {
		if err := claim("coordinator", c.ID); err != nil {
			return err
		}
		if c.Host == "" || strings.ContainsAny(c.Host, " /,=") {
			return fmt.Errorf("%w: coordinator %s: host %q must be an IP or a DNS name", ErrProject, c.ID, c.Host)
		}
		if ip := net.ParseIP(c.Host); ip != nil && ip.IsUnspecified() {
			return fmt.Errorf("%w: coordinator %s: host %s is a wildcard others cannot dial; put it in bind", ErrProject, c.ID, c.Host)
		}
		for _, port := range []struct {
			name string
			v    int
		}{{"raft_port", c.RaftPort}, {"quic_port", c.QUICPort}, {"http_port", c.HTTPPort}} {
			if port.v < 1 || port.v > 65535 {
				return fmt.Errorf("%w: coordinator %s: %s %d: must be 1-65535", ErrProject, c.ID, port.name, port.v)
			}
		}
		for _, a := range []string{"tcp/" + c.raftAdvertise(), "udp/" + c.quicAdvertise(), "tcp/" + c.httpAdvertise()} {
			if prev, ok := addrs[a]; ok {
				return fmt.Errorf("%w: coordinator %s: address %s already used by %s", ErrProject, c.ID, a, prev)
			}
			addrs[a] = c.ID
		}
		if (c.PublicKey == "") != (c.AgeRecipient == "") {
			return fmt.Errorf("%w: coordinator %s: give both public_key and age_recipient, or neither", ErrProject, c.ID)
		}
		if c.PublicKey != "" {
			pub, err := crypto.ParsePublicKey(c.PublicKey)
			if err != nil {
				return fmt.Errorf("%w: coordinator %s: public_key: %v", ErrProject, c.ID, err)
			}
			if _, err := age.ParseX25519Recipient(c.AgeRecipient); err != nil {
				return fmt.Errorf("%w: coordinator %s: age_recipient: %v", ErrProject, c.ID, err)
			}
			if prev, ok := keys[string(pub)]; ok {
				return fmt.Errorf("%w: coordinator %s: public_key already used by %s", ErrProject, c.ID, prev)
			}
			keys[string(pub)] = c.ID
		}
		if err := checkFlags("coordinator "+c.ID+" flags", c.Flags, managedCoordinatorFlags); err != nil {
			return err
		}
	}
	for _, s := range p.Sites {
		if err := claim("site", s.ID); err != nil {
			return err
		}
		if s.PublicKey != "" {
			pub, err := crypto.ParsePublicKey(s.PublicKey)
			if err != nil {
				return fmt.Errorf("%w: site %s: public_key: %v", ErrProject, s.ID, err)
			}
			if prev, ok := keys[string(pub)]; ok {
				return fmt.Errorf("%w: site %s: public_key already used by %s", ErrProject, s.ID, prev)
			}
			keys[string(pub)] = s.ID
		}
		if err := checkFlags("site "+s.ID+" flags", s.Flags, managedNodeFlags); err != nil {
			return err
		}
	}
	for _, o := range p.Operators {
		if err := claim("operator", o.Name); err != nil {
			return err
		}
		if _, err := api.ParseRole(o.Role); err != nil {
			return fmt.Errorf("%w: operator %s: role %q: must be one of admin, operator, auditor, reader", ErrProject, o.Name, o.Role)
		}
		if p.coordinator(o.Server) == nil {
			return fmt.Errorf("%w: operator %s: server %q is not a coordinator id", ErrProject, o.Name, o.Server)
		}
		if o.KeySHA256 != "" {
			if len(o.KeySHA256) != 64 || strings.Trim(strings.ToLower(o.KeySHA256), "0123456789abcdef") != "" {
				return fmt.Errorf("%w: operator %s: key_sha256 must be 64 hex digits", ErrProject, o.Name)
			}
		}
	}
	return nil
}

func checkFlags(where string, flags map[string]any, managed []string) error {
	for k, v := range flags {
		for _, m := range managed {
			if k == m {
				return fmt.Errorf("%w: %s: flag %q is set by the kit itself", ErrProject, where, k)
			}
		}
		if strings.HasPrefix(k, "-") || k == "" {
			return fmt.Errorf("%w: %s: flag %q: write flag names without dashes", ErrProject, where, k)
		}
		switch v.(type) {
		case string, int64, float64, bool:
		default:
			return fmt.Errorf("%w: %s: flag %q: value must be a string, number or boolean", ErrProject, where, k)
		}
	}
	return nil
}

func (p *Project) coordinator(id string) *Coordinator {
	for i := range p.Coordinators {
		if p.Coordinators[i].ID == id {
			return &p.Coordinators[i]
		}
	}
	return nil
}

func (p *Project) site(id string) *Site {
	for i := range p.Sites {
		if p.Sites[i].ID == id {
			return &p.Sites[i]
		}
	}
	return nil
}

func hostPort(h string, port int) string { return net.JoinHostPort(h, strconv.Itoa(port)) }

func (c *Coordinator) bindHost() string {
	if c.Bind != "" {
		return c.Bind
	}
	return c.Host
}

func (c *Coordinator) raftAdvertise() string { return hostPort(c.Host, c.RaftPort) }
func (c *Coordinator) quicAdvertise() string { return hostPort(c.Host, c.QUICPort) }
func (c *Coordinator) httpAdvertise() string { return hostPort(c.Host, c.HTTPPort) }

// advertises reports whether the member must name its advertised
// addresses explicitly (it binds another host than the one others dial).
func (c *Coordinator) advertises() bool { return c.bindHost() != c.Host }
