package clustertest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"golang.org/x/mod/sumdb/note"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/crypto"
)

// Config describes a cluster to start.
type Config struct {
	// Binary is the path of the mfn command (see BuildMFN). Required.
	Binary string
	// Dir holds everything: keys, data directories, logs. Zero means
	// t.TempDir().
	Dir string
	// Members is the number of coordinators; zero means 3.
	Members int
	// Origin names the cluster (the audit log key's name); zero means
	// "mfn.test/clustertest".
	Origin string
	// Tick is each member's round engine period (--tick); zero means
	// 50 ms.
	Tick time.Duration
	// OperatorKeys is the number of operator API keys to create; the API
	// limits each key to about 20 writes per second and route, so bulk
	// enrollment spreads over several keys. Zero means 4.
	OperatorKeys int
	// ExtraArgs are appended to every member's command line.
	ExtraArgs []string
	// Attest runs the members with round attestation (mfn coordinator's
	// default): every closed round adds a result leaf to the audit log.
	// False passes --attest=false, so the log holds exactly the accepted
	// updates, as the tests counting leaves expect.
	Attest bool
}

// Cluster is a set of `mfn coordinator` processes on 127.0.0.1 started
// with one --bootstrap list, and the keys a test client needs to talk to
// it: operator API keys, the coordinators' age recipients (to seal
// updates to) and Ed25519 keys (to pin over QUIC), and the audit log's
// verifier.
type Cluster struct {
	Dir    string
	Origin string
	// Binary is the mfn command the members run (see MFN).
	Binary string
	// LogVerifierFile is the path of the audit log's verifier key
	// (log.vkey), for "mfn audit verify-log --log-key @FILE".
	LogVerifierFile string
	// PeerKeysFile lists the members' keys, "<id> mfn-ed25519:<base64>"
	// per line (--peer-keys, and "mfn audit verify-log --member-keys").
	PeerKeysFile string
	// Members in id order c1, c2, ….
	Members []*Member
	// Recipients are the members' age recipients, CoordKeys their Ed25519
	// keys, in member order.
	Recipients []age.Recipient
	CoordKeys  []ed25519.PublicKey
	// LogVerifier checks the cluster's signed audit checkpoints.
	LogVerifier note.Verifier
	// AdminKey, AuditorKey and ReaderKey are API keys of those roles;
	// OperatorKeys has Config.OperatorKeys operator keys.
	AdminKey, AuditorKey, ReaderKey string
	OperatorKeys                    []string

	t      testing.TB
	mu     sync.Mutex
	leader *Member // the leader Write found last
}

// Member is one coordinator process: its addresses, directories and
// current incarnation. Kill, Stop, Cont and Start act on the process;
// every incarnation writes its stderr (JSON logs) to its own file.
type Member struct {
	ID                           string
	RaftAddr, QUICAddr, HTTPAddr string
	DataDir, KeyDir              string

	binary string
	args   []string
	logDir string

	mu     sync.Mutex
	proc   *process
	logs   []string
	starts int
}

type process struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	err     error         // Wait's result, set before done closes
	stopped bool          // SIGSTOP sent and no SIGCONT since
	log     *os.File
}

// Start generates keys with the mfn binary ("mfn keygen --role
// coordinator" per member, "mfn audit keygen" for the log key), writes the
// peer key list and an API key file, picks free loopback ports and starts
// every member with the same --bootstrap list. It does not wait for the
// cluster to become ready (see WaitReady). Every process is killed in
// t.Cleanup, and if the test failed each member's log is printed with
// t.Log first.
func Start(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	if cfg.Binary == "" {
		t.Fatal("clustertest: Config.Binary is empty")
	}
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Members == 0 {
		cfg.Members = 3
	}
	if cfg.Origin == "" {
		cfg.Origin = "mfn.test/clustertest"
	}
	if cfg.Tick == 0 {
		cfg.Tick = 50 * time.Millisecond
	}
	if cfg.OperatorKeys == 0 {
		cfg.OperatorKeys = 4
	}
	c := &Cluster{Dir: cfg.Dir, Origin: cfg.Origin, Binary: cfg.Binary, t: t}
	t.Cleanup(c.cleanup)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	logKeyDir := filepath.Join(cfg.Dir, "logkey")
	if out, err := exec.CommandContext(ctx, cfg.Binary, "audit", "keygen", "--name", cfg.Origin, "--out", logKeyDir).CombinedOutput(); err != nil {
		t.Fatalf("clustertest: mfn audit keygen: %v\n%s", err, out)
	}
	c.LogVerifierFile = filepath.Join(logKeyDir, "log.vkey")
	vkey, err := os.ReadFile(c.LogVerifierFile)
	if err != nil {
		t.Fatal(err)
	}
	if c.LogVerifier, err = audit.NewLogVerifier(strings.TrimSpace(string(vkey))); err != nil {
		t.Fatalf("clustertest: log.vkey: %v", err)
	}

	ports := freePorts(t, cfg.Members)
	var peers, bootstrap []string
	for i := range cfg.Members {
		m := &Member{
			ID:       fmt.Sprintf("c%d", i+1),
			RaftAddr: ports[i].raft, QUICAddr: ports[i].quic, HTTPAddr: ports[i].http,
			binary: cfg.Binary,
		}
		mdir := filepath.Join(cfg.Dir, m.ID)
		m.DataDir, m.KeyDir, m.logDir = filepath.Join(mdir, "data"), filepath.Join(mdir, "keys"), mdir
		if out, err := exec.CommandContext(ctx, cfg.Binary, "keygen", "--role", "coordinator", "--out", m.KeyDir).CombinedOutput(); err != nil {
			t.Fatalf("clustertest: mfn keygen for %s: %v\n%s", m.ID, err, out)
		}
		pub, err := crypto.LoadPublicIdentity(m.KeyDir)
		if err != nil {
			t.Fatalf("clustertest: %s: %v", m.ID, err)
		}
		if pub.Recipient == nil {
			t.Fatalf("clustertest: %s: keygen wrote no age recipient", m.ID)
		}
		c.Recipients = append(c.Recipients, pub.Recipient)
		c.CoordKeys = append(c.CoordKeys, pub.SigningKey)
		peers = append(peers, m.ID+" "+crypto.FormatPublicKey(pub.SigningKey))
		bootstrap = append(bootstrap, m.ID+"="+m.RaftAddr)
		c.Members = append(c.Members, m)
	}
	peerFile := filepath.Join(cfg.Dir, "peers.txt")
	c.PeerKeysFile = peerFile
	if err := os.WriteFile(peerFile, []byte(strings.Join(peers, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(cfg.Dir, "apikeys.json")
	if err := c.writeAPIKeys(keyFile, cfg.OperatorKeys); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		m.args = append([]string{"coordinator",
			"--id", m.ID, "--data-dir", m.DataDir, "--identity", m.KeyDir,
			"--log-key", filepath.Join(logKeyDir, "log.skey"), "--peer-keys", peerFile, "--api-keys", keyFile,
			"--raft-addr", m.RaftAddr, "--quic-addr", m.QUICAddr, "--http-addr", m.HTTPAddr,
			"--bootstrap", strings.Join(bootstrap, ","), "--tick", cfg.Tick.String(), "--shutdown-timeout", "5s",
		}, cfg.ExtraArgs...)
		if !cfg.Attest {
			m.args = append(m.args, "--attest=false")
		}
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// MFN runs the mfn binary with args (e.g. "ctl", "--server", …) and
// returns its stdout and stderr; err is the exit error, if any.
func (c *Cluster) MFN(ctx context.Context, args ...string) (stdout, stderr []byte, err error) {
	var o, e bytes.Buffer
	cmd := exec.CommandContext(ctx, c.Binary, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.Dir = c.Dir
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}

// writeAPIKeys writes a JSON key file (mode 0600, as the API demands for
// plain secrets) with one admin, auditor and reader key and n operator
// keys.
func (c *Cluster) writeAPIKeys(path string, n int) error {
	type key struct {
		Name string `json:"name"`
		Role string `json:"role"`
		Key  string `json:"key"`
	}
	secret := func(name string) string { return "clustertest-" + name + "-0123456789abcdef" }
	c.AdminKey, c.AuditorKey, c.ReaderKey = secret("admin"), secret("auditor"), secret("reader")
	keys := []key{{"admin", "admin", c.AdminKey}, {"auditor", "auditor", c.AuditorKey}, {"reader", "reader", c.ReaderKey}}
	for i := range n {
		name := fmt.Sprintf("operator%d", i)
		c.OperatorKeys = append(c.OperatorKeys, secret(name))
		keys = append(keys, key{name, "operator", secret(name)})
	}
	b, err := json.MarshalIndent(keys, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

type memberPorts struct{ raft, quic, http string }

// freePorts reserves loopback ports for n members: TCP for Raft and HTTP,
// UDP for QUIC. All sockets stay open until every port is chosen, so no
// two members get the same one; another process could still take a port
// between here and the member's start, which then fails with "address
// already in use" in its log.
func freePorts(t testing.TB, n int) []memberPorts {
	t.Helper()
	var closers []func() error
	defer func() {
		for _, cl := range closers {
			cl()
		}
	}()
	tcp := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, l.Close)
		return l.Addr().String()
	}
	udp := func() string {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, pc.Close)
		return pc.LocalAddr().String()
	}
	out := make([]memberPorts, n)
	for i := range out {
		out[i] = memberPorts{raft: tcp(), quic: udp(), http: tcp()}
	}
	return out
}

// ErrRunning is returned by Start for a member whose process runs.
var ErrRunning = errors.New("clustertest: member is running")

// Start launches a new incarnation of the member with its original
// flags and data directory (a restart after Kill). Its stderr goes to
// DIR/<id>/<id>.<n>.log. The process gets SIGKILL if the test process
// dies (Linux parent-death signal).
func (m *Member) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil {
		select {
		case <-m.proc.done:
		default:
			return fmt.Errorf("%w: %s", ErrRunning, m.ID)
		}
	}
	m.starts++
	path := filepath.Join(m.logDir, fmt.Sprintf("%s.%d.log", m.ID, m.starts))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	cmd := exec.Command(m.binary, m.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("clustertest: start %s: %w", m.ID, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), log: f}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	m.proc = p
	m.logs = append(m.logs, path)
	return nil
}

// current returns the live process, or nil.
func (m *Member) current() *process {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		return nil
	}
	select {
	case <-m.proc.done:
		return nil
	default:
		return m.proc
	}
}

// PID returns the process id of the current incarnation, 0 if none runs.
func (m *Member) PID() int {
	if p := m.current(); p != nil {
		return p.cmd.Process.Pid
	}
	return 0
}

// Running reports whether the member's process is alive (stopped or not).
func (m *Member) Running() bool { return m.current() != nil }

// Stopped reports whether the member is alive but stopped with SIGSTOP.
func (m *Member) Stopped() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc != nil && m.proc.stopped
}

// Exited returns a channel closed when the current incarnation exits,
// and its exit error once closed; nil if never started.
func (m *Member) Exited() (<-chan struct{}, func() error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		return nil, nil
	}
	p := m.proc
	return p.done, func() error { return p.err }
}

// Kill sends SIGKILL and waits (at most 10 s) for the process to be gone.
// Killing a member that is not running does nothing.
func (m *Member) Kill() error {
	p := m.current()
	if p == nil {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("clustertest: kill %s: %w", m.ID, err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("clustertest: %s did not exit 10 s after SIGKILL", m.ID)
	}
	m.mu.Lock()
	p.stopped = false
	m.mu.Unlock()
	return nil
}

// Stop freezes the process with SIGSTOP: it keeps its sockets but
// answers nothing, as a member on the far side of a partition.
func (m *Member) Stop() error { return m.signal(syscall.SIGSTOP, true) }

// Cont resumes a process frozen by Stop.
func (m *Member) Cont() error { return m.signal(syscall.SIGCONT, false) }

func (m *Member) signal(sig syscall.Signal, stopped bool) error {
	p := m.current()
	if p == nil {
		return fmt.Errorf("clustertest: %s is not running", m.ID)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("clustertest: %v to %s: %w", sig, m.ID, err)
	}
	m.mu.Lock()
	p.stopped = stopped
	m.mu.Unlock()
	return nil
}

// Terminate sends SIGTERM (graceful shutdown) and waits up to timeout
// for the exit; it returns the process's exit error.
func (m *Member) Terminate(timeout time.Duration) error {
	p := m.current()
	if p == nil {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("clustertest: %s still running %v after SIGTERM", m.ID, timeout)
	}
}

// LogFiles returns the member's log files, one per incarnation.
func (m *Member) LogFiles() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.logs...)
}

// LogContains reports whether the member's log of incarnation n (1 for
// the first start) has a line containing s.
func (m *Member) LogContains(n int, s string) (bool, error) {
	files := m.LogFiles()
	if n < 1 || n > len(files) {
		return false, fmt.Errorf("clustertest: %s has no incarnation %d", m.ID, n)
	}
	b, err := os.ReadFile(files[n-1])
	if err != nil {
		return false, err
	}
	return bytes.Contains(b, []byte(s)), nil
}

// Member returns the member with the given id, or nil.
func (c *Cluster) Member(id string) *Member {
	for _, m := range c.Members {
		if m.ID == id {
			return m
		}
	}
	return nil
}

// Others returns every member except those given.
func (c *Cluster) Others(except ...*Member) []*Member {
	var out []*Member
	for _, m := range c.Members {
		skip := false
		for _, e := range except {
			skip = skip || e == m
		}
		if !skip {
			out = append(out, m)
		}
	}
	return out
}

// logTailLines bounds what a failed test prints of each log file.
const logTailLines = 120

func (c *Cluster) cleanup() {
	for _, m := range c.Members {
		if err := m.Kill(); err != nil {
			c.t.Log(err)
		}
	}
	if !c.t.Failed() {
		return
	}
	for _, m := range c.Members {
		for _, path := range m.LogFiles() {
			c.t.Logf("---- %s (last %d lines) ----\n%s", path, logTailLines, tail(path, logTailLines))
		}
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 4*n {
			lines = append(lines[:0], lines[len(lines)-n:]...)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
