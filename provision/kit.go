package provision

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"path"
	"sort"
	"strings"

	"filippo.io/age"
	"github.com/BurntSushi/toml"

	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/node"
)

// File is one file of the output: a path relative to the output folder
// (slash-separated), its content and its mode.
type File struct {
	Path string
	Data []byte
	Mode uint32
}

// Kit folders inside the output folder, and the files every kit has.
const (
	CoordinatorsDir = "coordinators"
	SitesDir        = "sites"
	OperatorsDir    = "operators"
	// ManifestFile lists the SHA-256 of every other file of a kit in
	// sha256sum's format ("sha256sum -c MANIFEST.sha256" checks a kit).
	ManifestFile = "MANIFEST.sha256"
	// EnrolmentFile lists node ids and keys, one "<id> mfn-ed25519:<key>"
	// per line: in a site kit its own line, at the top of the output and
	// in operator kits every site's (the --node-keys file of
	// "mfn audit verify-log").
	EnrolmentFile = "enrolment.txt"
)

// member is a coordinator with its public keys resolved.
type member struct {
	*Coordinator
	pub  string // mfn-ed25519:…
	rcpt string // age1…
	id   *crypto.Identity
}

// render computes every file of the output for p, generating missing
// secrets in s.
func render(p *Project, s *secrets) ([]File, error) {
	skey, vkey, err := s.logKey(p.Origin)
	if err != nil {
		return nil, err
	}
	members := make([]member, len(p.Coordinators))
	for i := range p.Coordinators {
		c := &p.Coordinators[i]
		m := member{Coordinator: c, pub: c.PublicKey, rcpt: c.AgeRecipient}
		if c.PublicKey == "" {
			id, err := s.identity(CoordinatorsDir+"/"+c.ID, crypto.RoleCoordinator)
			if err != nil {
				return nil, err
			}
			m.id, m.pub, m.rcpt = id, crypto.FormatPublicKey(id.PublicKey()), id.Recipient().String()
		}
		members[i] = m
	}
	clusterTxt, err := clusterFile(p, members)
	if err != nil {
		return nil, err
	}
	var peers bytes.Buffer
	fmt.Fprintf(&peers, "# Coordinator keys of %s (mfn coordinator --peer-keys).\n", p.Origin)
	for _, m := range members {
		fmt.Fprintf(&peers, "%s %s\n", m.ID, m.pub)
	}
	apiKeys, secretsByName, err := apiKeyFile(p, s)
	if err != nil {
		return nil, err
	}
	type siteKeys struct {
		pub string
		id  *crypto.Identity
	}
	sites := make([]siteKeys, len(p.Sites))
	var enrol bytes.Buffer
	for i, st := range p.Sites {
		sk := siteKeys{pub: st.PublicKey}
		if st.PublicKey == "" {
			id, err := s.identity(SitesDir+"/"+st.ID, crypto.RoleNode)
			if err != nil {
				return nil, err
			}
			sk.id, sk.pub = id, crypto.FormatPublicKey(id.PublicKey())
		}
		sites[i] = sk
		fmt.Fprintf(&enrol, "%s %s\n", st.ID, sk.pub)
	}

	var out []File
	add := func(kit string, files []File) {
		sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
		var man bytes.Buffer
		for _, f := range files {
			sum := sha256.Sum256(f.Data)
			fmt.Fprintf(&man, "%s  %s\n", hex.EncodeToString(sum[:]), f.Path)
		}
		files = append(files, File{Path: ManifestFile, Data: man.Bytes(), Mode: 0o644})
		for _, f := range files {
			f.Path = kit + "/" + f.Path
			out = append(out, f)
		}
	}

	bootstrap := make([]string, len(members))
	for i, m := range members {
		bootstrap[i] = m.ID + "=" + m.raftAdvertise()
	}
	for _, m := range members {
		files := []File{
			{Path: "keys/" + crypto.SigningPubFile, Data: []byte(m.pub + "\n"), Mode: 0o644},
			{Path: "keys/" + crypto.AgePubFile, Data: []byte(m.rcpt + "\n"), Mode: 0o644},
			{Path: "logkey/log.skey", Data: []byte(skey + "\n"), Mode: 0o600},
			{Path: "logkey/log.vkey", Data: []byte(vkey + "\n"), Mode: 0o644},
			{Path: "peers.txt", Data: peers.Bytes(), Mode: 0o644},
			{Path: "api-keys.toml", Data: apiKeys, Mode: 0o600},
			{Path: "cluster.txt", Data: clusterTxt, Mode: 0o644},
		}
		if m.id != nil {
			priv, err := privateFiles(m.id)
			if err != nil {
				return nil, err
			}
			files = append(files, priv...)
		}
		cfg := map[string]any{}
		for k, v := range p.CoordinatorFlags {
			cfg[k] = v
		}
		for k, v := range m.Flags {
			cfg[k] = v
		}
		bind := m.bindHost()
		cfg["id"] = m.ID
		cfg["data-dir"] = m.DataDir
		cfg["identity"] = "keys"
		cfg["log-key"] = "logkey/log.skey"
		cfg["peer-keys"] = "peers.txt"
		cfg["api-keys"] = "api-keys.toml"
		cfg["raft-addr"] = hostPort(bind, m.RaftPort)
		cfg["quic-addr"] = hostPort(bind, m.QUICPort)
		cfg["http-addr"] = hostPort(bind, m.HTTPPort)
		if m.advertises() {
			cfg["raft-advertise"] = m.raftAdvertise()
			cfg["quic-advertise"] = m.quicAdvertise()
			cfg["http-advertise"] = m.httpAdvertise()
		}
		if p.HTTPTLS == HTTPSelfSigned {
			cfg["http-tls-self-signed"] = true
		} else {
			cfg["http-insecure"] = true
		}
		cfg["bootstrap"] = strings.Join(bootstrap, ",")
		conf, err := configFile(fmt.Sprintf("mfn coordinator %s of %s: mfn coordinator --config coordinator.toml", m.ID, p.Origin), cfg)
		if err != nil {
			return nil, err
		}
		installed := path.Join(p.InstallDir, m.ID)
		files = append(files,
			File{Path: "coordinator.toml", Data: conf, Mode: 0o644},
			File{Path: "start.sh", Data: startScript("coordinator", m.ID, p.Origin, "coordinator.toml"), Mode: 0o755},
			File{Path: "mfn-coordinator-" + m.ID + ".service", Data: systemdUnit(p, "coordinator", m.ID, installed, absUnder(installed, m.DataDir), "coordinator.toml"), Mode: 0o644},
			File{Path: "README.txt", Data: coordinatorReadme(p, m), Mode: 0o644},
		)
		add(CoordinatorsDir+"/"+m.ID, files)
	}

	for i, st := range p.Sites {
		sk := sites[i]
		files := []File{
			{Path: "keys/" + crypto.SigningPubFile, Data: []byte(sk.pub + "\n"), Mode: 0o644},
			{Path: "cluster.txt", Data: clusterTxt, Mode: 0o644},
			{Path: EnrolmentFile, Data: []byte(st.ID + " " + sk.pub + "\n"), Mode: 0o644},
		}
		if sk.id != nil {
			priv, err := privateFiles(sk.id)
			if err != nil {
				return nil, err
			}
			files = append(files, priv...)
		}
		cfg := map[string]any{}
		for k, v := range p.NodeFlags {
			cfg[k] = v
		}
		for k, v := range st.Flags {
			cfg[k] = v
		}
		cfg["id"] = st.ID
		cfg["identity"] = "keys"
		cfg["cluster"] = "cluster.txt"
		cfg["state-dir"] = st.StateDir
		conf, err := configFile(fmt.Sprintf("mfn node %s of %s: mfn node --config node.toml", st.ID, p.Origin), cfg)
		if err != nil {
			return nil, err
		}
		installed := path.Join(p.InstallDir, st.ID)
		files = append(files,
			File{Path: "node.toml", Data: conf, Mode: 0o644},
			File{Path: "start.sh", Data: startScript("node", st.ID, p.Origin, "node.toml"), Mode: 0o755},
			File{Path: "mfn-node-" + st.ID + ".service", Data: systemdUnit(p, "node", st.ID, installed, absUnder(installed, st.StateDir), "node.toml"), Mode: 0o644},
		)
		add(SitesDir+"/"+st.ID, files)
	}

	for _, o := range p.Operators {
		srv := p.coordinator(o.Server)
		scheme := "https"
		if p.HTTPTLS == HTTPPlain {
			scheme = "http"
		}
		cfg := map[string]any{"server": scheme + "://" + srv.httpAdvertise()}
		if k := secretsByName[o.Name]; k != "" {
			cfg["api-key"] = k
		}
		if p.HTTPTLS == HTTPSelfSigned {
			pins := make([]any, len(members))
			for i, m := range members {
				pins[i] = m.pub
			}
			cfg["pin"] = pins
		}
		head := fmt.Sprintf("mfn ctl settings of operator %s (%s) of %s: mfn ctl --config ctl.toml ...", o.Name, o.Role, p.Origin)
		if o.KeySHA256 != "" {
			head += "\nThe key is your own (key_sha256 in the project): add api-key = \"...\" here."
		}
		conf, err := configFile(head, cfg)
		if err != nil {
			return nil, err
		}
		add(OperatorsDir+"/"+o.Name, []File{
			{Path: "ctl.toml", Data: conf, Mode: 0o600},
			{Path: "log.vkey", Data: []byte(vkey + "\n"), Mode: 0o644},
			{Path: EnrolmentFile, Data: enrol.Bytes(), Mode: 0o644},
			{Path: "cluster.txt", Data: clusterTxt, Mode: 0o644},
		})
	}

	out = append(out,
		File{Path: EnrolmentFile, Data: enrol.Bytes(), Mode: 0o644},
		File{Path: "cluster.txt", Data: clusterTxt, Mode: 0o644},
		File{Path: "log.vkey", Data: []byte(vkey + "\n"), Mode: 0o644},
	)
	return out, nil
}

// clusterFile renders the nodes' cluster file: origin, and every member's
// QUIC address, pinned key and age recipient.
func clusterFile(p *Project, members []member) ([]byte, error) {
	c := &node.Cluster{Origin: p.Origin}
	for _, m := range members {
		pub, err := crypto.ParsePublicKey(m.pub)
		if err != nil {
			return nil, fmt.Errorf("provision: coordinator %s: %w", m.ID, err)
		}
		rcpt, err := age.ParseX25519Recipient(m.rcpt)
		if err != nil {
			return nil, fmt.Errorf("provision: coordinator %s: %w", m.ID, err)
		}
		c.Members = append(c.Members, node.Member{ID: m.ID, QUICAddr: m.quicAdvertise(), PublicKey: pub, Recipient: rcpt})
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	return c.Format(), nil
}

// apiKeyFile renders the coordinators' --api-keys file, which holds only
// SHA-256 digests, and returns the generated secrets by operator name.
func apiKeyFile(p *Project, s *secrets) ([]byte, map[string]string, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Operator API keys of %s (mfn coordinator --api-keys); digests only.\n", p.Origin)
	byName := map[string]string{}
	for _, o := range p.Operators {
		digest := strings.ToLower(o.KeySHA256)
		if digest == "" {
			k, err := s.apiKey(o.Name)
			if err != nil {
				return nil, nil, err
			}
			byName[o.Name] = k
			sum := sha256.Sum256([]byte(k))
			digest = hex.EncodeToString(sum[:])
		}
		fmt.Fprintf(&b, "\n[[keys]]\nname = %q\nrole = %q\nkey_sha256 = %q\n", o.Name, o.Role, digest)
	}
	if len(p.Operators) == 0 {
		// The coordinator refuses an empty key file; without operators the
		// API serves only health, metrics and joins.
		return nil, byName, fmt.Errorf("%w: no [[operators]]: the cluster would have no operator API key", ErrProject)
	}
	return b.Bytes(), byName, nil
}

// privateFiles renders an identity's private files exactly as
// crypto.SaveIdentity writes them.
func privateFiles(id *crypto.Identity) ([]File, error) {
	der, err := x509.MarshalPKCS8PrivateKey(id.SigningKey)
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	files := []File{{Path: "keys/" + crypto.SigningKeyFile, Data: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), Mode: 0o600}}
	if id.Age != nil {
		files = append(files, File{Path: "keys/" + crypto.AgeKeyFile, Data: []byte("# public key: " + id.Age.Recipient().String() + "\n" + id.Age.String() + "\n"), Mode: 0o600})
	}
	return files, nil
}

// configFile renders a --config TOML file with a comment header; keys are
// flag names, sorted.
func configFile(header string, cfg map[string]any) ([]byte, error) {
	var b bytes.Buffer
	for _, line := range strings.Split(header, "\n") {
		b.WriteString("# " + line + "\n")
	}
	b.WriteString("# Written by mfn provision; flags on the command line override these.\n\n")
	if err := toml.NewEncoder(&b).Encode(cfg); err != nil {
		return nil, fmt.Errorf("provision: config: %w", err)
	}
	return b.Bytes(), nil
}

func startScript(cmd, id, origin, config string) []byte {
	return []byte(fmt.Sprintf(`#!/bin/sh
# Starts mfn %[1]s %[2]s of %[3]s from this kit's folder.
# MFN names the mfn binary (default: mfn on the PATH); arguments are passed
# on and override %[4]s (e.g. ./start.sh --log-level debug).
set -eu
cd "$(dirname "$0")"
exec "${MFN:-mfn}" %[1]s --config %[4]s "$@"
`, cmd, id, origin, config))
}

func systemdUnit(p *Project, cmd, id, installed, dataDir, config string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `# systemd unit of mfn %[1]s %[2]s. Install the kit in %[3]s, then:
#   sudo useradd --system --home-dir %[3]s --shell /usr/sbin/nologin mfn
#   sudo chown -R mfn:mfn %[3]s
#   sudo cp %[3]s/mfn-%[1]s-%[2]s.service /etc/systemd/system/
#   sudo systemctl daemon-reload && sudo systemctl enable --now mfn-%[1]s-%[2]s
[Unit]
Description=MFN %[1]s %[2]s of %[4]s
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=mfn
Group=mfn
WorkingDirectory=%[3]s
ExecStart=%[5]s %[1]s --config %[3]s/%[6]s
# SIGTERM shuts down gracefully (a coordinator leader hands over first).
KillSignal=SIGTERM
TimeoutStopSec=30s
Restart=on-failure
RestartSec=5s
# Give up after 10 failed starts within 5 minutes (see journalctl -u).
StartLimitIntervalSec=300
StartLimitBurst=10
LimitNOFILE=65536
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths=%[7]s
`, cmd, id, installed, p.Origin, p.Binary, config, dataDir)
	if cmd == "node" {
		b.WriteString("# A node stays well under 64 MiB resident; the bound stops a runaway.\nMemoryMax=256M\n")
	}
	b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
	return []byte(b.String())
}

func absUnder(base, p string) string {
	if path.IsAbs(p) {
		return p
	}
	return path.Join(base, p)
}

func coordinatorReadme(p *Project, m member) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "Kit of coordinator %s of %s.\n\n", m.ID, p.Origin)
	fmt.Fprintf(&b, "Ports: %d/tcp Raft (mutual TLS, other members only), %d/udp QUIC (nodes), %d/tcp operator API.\n", m.RaftPort, m.QUICPort, m.HTTPPort)
	b.WriteString("Start: ./start.sh (MFN=/path/to/mfn if mfn is not on the PATH), or the systemd unit.\n")
	b.WriteString("Check: sha256sum -c MANIFEST.sha256\n")
	if m.id == nil {
		b.WriteString("\nThis member brought its own keys: copy signing.key and age.key (mode 0600,\nfrom mfn keygen on this machine) into keys/ before starting.\n")
	}
	return []byte(b.String())
}
