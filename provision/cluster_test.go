package provision_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mfn/mfn/internal/clustertest"
	"github.com/mfn/mfn/provision"
)

var (
	buildOnce sync.Once
	builtMFN  string
	buildDir  string
	buildErr  error
)

// TestMain removes the mfn binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// mfnBinary builds the mfn command once per test binary.
func mfnBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		root, err := clustertest.ModuleRoot(ctx)
		if err != nil {
			buildErr = err
			return
		}
		buildDir, err = os.MkdirTemp("", "mfn-provision-test-")
		if err != nil {
			buildErr = err
			return
		}
		builtMFN, buildErr = clustertest.BuildMFN(ctx, root, buildDir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtMFN
}

// loopbackPorts returns n TCP ports and n UDP ports free on 127.0.0.1 a
// moment ago.
func loopbackPorts(t *testing.T, n int) (tcp, udp []int) {
	t.Helper()
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, func() { l.Close() })
		tcp = append(tcp, l.Addr().(*net.TCPAddr).Port)
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, func() { u.Close() })
		udp = append(udp, u.LocalAddr().(*net.UDPAddr).Port)
	}
	return tcp, udp
}

// proc is a process started from a kit's start.sh.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan error
}

func startKit(t *testing.T, bin, kit string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), filepath.Base(kit)+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(kit, "start.sh"))
	cmd.Env = append(os.Environ(), "MFN="+bin)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) > 15 {
				lines = lines[len(lines)-15:]
			}
			t.Logf("%s log tail:\n%s", filepath.Base(kit), strings.Join(lines, "\n"))
		}
	})
	return p
}

// TestKitsRunARealCluster provisions 3 coordinators, 1 site and an admin
// into a temporary folder, starts every participant from its kit's
// start.sh on loopback, enrols the site with "mfn ctl nodes enroll --kit",
// runs a 3-round job to completion through the operator kit's ctl.toml
// (HTTPS with pinned coordinator keys), and verifies the exported audit
// log offline with the project's log.vkey and enrolment.txt.
func TestKitsRunARealCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	bin := mfnBinary(t)
	dir := t.TempDir()
	tcp, udp := loopbackPorts(t, 6)
	var b strings.Builder
	b.WriteString(`origin = "mfn.test/provision"
[coordinator_flags]
tick = "50ms"
eval-per-regime = 5
[node_flags]
samples = 40
backoff-max = "1s"
`)
	for i := range 3 {
		fmt.Fprintf(&b, "[[coordinators]]\nid = \"c%d\"\nhost = \"127.0.0.1\"\nraft_port = %d\nhttp_port = %d\nquic_port = %d\n", i+1, tcp[2*i], tcp[2*i+1], udp[i])
	}
	b.WriteString("[[sites]]\nid = \"site-01\"\nflags = { regime-mix = \"4,1,1,1\", data-seed = 7 }\n")
	b.WriteString("[[operators]]\nname = \"admin\"\nrole = \"admin\"\nserver = \"c2\"\n")
	projectPath := filepath.Join(dir, "project.toml")
	if err := os.WriteFile(projectPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "kits")
	run := func(ctx context.Context, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil {
			return stdout.String(), fmt.Errorf("mfn %s: %w: %s", strings.Join(args, " "), err, stderr.String())
		}
		return stdout.String(), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if _, err := run(ctx, "provision", "--project", projectPath, "--out", out); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		startKit(t, bin, filepath.Join(out, provision.CoordinatorsDir, fmt.Sprintf("c%d", i+1)))
	}
	ctl := func(args ...string) (string, error) {
		return run(ctx, append([]string{"ctl", "--config", filepath.Join(out, provision.OperatorsDir, "admin", "ctl.toml")}, args...)...)
	}
	// A leader whose QUIC and HTTP addresses are published (followers
	// forward writes to the HTTP one); the KEY column may follow.
	leaderRow := regexp.MustCompile(`(?m)^c[0-9]+ +leader +Voter +\S+ +[^ -]\S* +[^ -]\S*( +\S+)?$`)
	if err := clustertest.Poll(ctx, "a leader with its addresses", func() (bool, error) {
		s, err := ctl("cluster", "status")
		return err == nil && leaderRow.MatchString(s), err
	}); err != nil {
		t.Fatal(err)
	}
	site := filepath.Join(out, provision.SitesDir, "site-01")
	enrolled, err := ctl("nodes", "enroll", "--kit", site)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := os.ReadFile(filepath.Join(site, provision.EnrolmentFile)); !strings.Contains(enrolled, "enrolled node "+strings.TrimSpace(string(want))) {
		t.Fatalf("enrol printed %q, want the kit's line %q", enrolled, want)
	}
	startKit(t, bin, site)
	if _, err := ctl("jobs", "create", "--id", "j1", "--task", "mfn-regime", "--dim", "76", "--rule", "fedavg",
		"--f", "0", "--rounds", "3", "--min-updates", "1", "--max-updates", "1", "--round-deadline", "1m"); err != nil {
		t.Fatal(err)
	}
	var job struct {
		State     string `json:"state"`
		Completed uint64 `json:"completed"`
		Failed    uint64 `json:"failed"`
	}
	if err := clustertest.Poll(ctx, "job j1 completed", func() (bool, error) {
		s, err := ctl("jobs", "get", "j1", "--json")
		if err != nil {
			return false, err
		}
		if err := json.Unmarshal([]byte(s), &job); err != nil {
			return false, err
		}
		return job.State != "running", nil
	}); err != nil {
		t.Fatal(err)
	}
	if job.State != "completed" || job.Completed != 3 || job.Failed != 0 {
		t.Fatalf("job = %+v, want completed with 3 rounds", job)
	}
	// The site recorded one acknowledgement per round.
	acks, err := run(ctx, "node", "acks", "--state-dir", filepath.Join(site, "state"), "--json")
	if err != nil {
		t.Fatal(err)
	}
	var records []json.RawMessage
	if err := json.Unmarshal([]byte(acks), &records); err != nil || len(records) != 3 {
		t.Fatalf("node acks: %d records (%v), want 3:\n%s", len(records), err, acks)
	}
	// The audit log verifies offline with the project's public files.
	export := filepath.Join(dir, "auditlog")
	if _, err := ctl("audit", "export", "--out", export); err != nil {
		t.Fatal(err)
	}
	if _, err := run(ctx, "audit", "verify-log", export, "--log-key", "@"+filepath.Join(out, "log.vkey"),
		"--node-keys", filepath.Join(out, provision.EnrolmentFile)); err != nil {
		t.Fatal(err)
	}
	// Provisioning again changes nothing, running members and all.
	res, err := run(ctx, "provision", "--project", projectPath, "--out", out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res, "0 files created, 0 extended, 0 replaced,") {
		t.Fatalf("re-run: %q, want nothing created or replaced", res)
	}
}
