package provision_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mfn/mfn/internal/clustertest"
)

// shBlock matches a fenced ```sh block of a Markdown file.
var shBlock = regexp.MustCompile("(?ms)^```sh\n(.*?)^```\\s*$")

// tutorialBlocks returns the sh blocks of docs/TUTORIAL.md in order.
func tutorialBlocks(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root, err := clustertest.ModuleRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(root, "docs", "TUTORIAL.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, m := range shBlock.FindAllSubmatch(md, -1) {
		blocks = append(blocks, string(m[1]))
	}
	return blocks
}

// freeOnAll returns a port free on every host, for TCP (and UDP when
// udp is set).
func freeOnAll(t *testing.T, hosts []string, udp bool) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", net.JoinHostPort(hosts[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		ok := true
		for _, h := range hosts {
			addr := net.JoinHostPort(h, fmt.Sprint(port))
			if udp {
				c, err := net.ListenPacket("udp", addr)
				if err != nil {
					ok = false
					break
				}
				c.Close()
			} else {
				l, err := net.Listen("tcp", addr)
				if err != nil {
					ok = false
					break
				}
				l.Close()
			}
		}
		if ok {
			return port
		}
	}
	t.Fatal("no port free on every loopback host")
	return 0
}

// TestTutorial runs every sh block of docs/TUTORIAL.md, literally and in
// order, in one bash with -euo pipefail, in a temporary folder, with the
// mfn binary on the PATH and the address variables of its first block set
// to free loopback ports. It fails if any command fails or if the whole
// run takes more than 6 minutes; the processes the tutorial starts are
// stopped by its last block, and killed as a process group in any case.
func TestTutorial(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a federation")
	}
	blocks := tutorialBlocks(t)
	if len(blocks) < 10 {
		t.Fatalf("TUTORIAL.md has %d sh blocks; the parser or the file is broken", len(blocks))
	}
	if !strings.Contains(blocks[0], "C1=${C1:-") || !strings.Contains(blocks[len(blocks)-1], "kill $(jobs -p)") {
		t.Fatal("TUTORIAL.md must set the address variables in its first sh block and stop its processes in the last")
	}
	bin := mfnBinary(t)
	hosts := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}
	raft := freeOnAll(t, hosts, false)
	http := freeOnAll(t, hosts, false)
	quic := freeOnAll(t, hosts, true)

	script := "set -euo pipefail\nset -x\n" + strings.Join(blocks, "\n")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"C1="+hosts[0], "C2="+hosts[1], "C3="+hosts[2],
		fmt.Sprintf("RAFT=%d", raft), fmt.Sprintf("HTTP=%d", http), fmt.Sprintf("QUIC=%d", quic),
		"MFN_CONFIG=", "MFN_SERVER=", "MFN_API_KEY=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = fmt.Errorf("timed out: %w", <-done)
	}
	// Whatever happened, nothing the tutorial started outlives the test.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if err != nil {
		logs := ""
		for _, name := range []string{"c1.log", "c2.log", "c3.log", "site-01.log"} {
			b, _ := os.ReadFile(filepath.Join(cmd.Dir, "mfn-tutorial", name))
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) > 5 {
				lines = lines[len(lines)-5:]
			}
			logs += "--- " + name + "\n" + strings.Join(lines, "\n") + "\n"
		}
		t.Fatalf("tutorial failed: %v\n%s\n%s", err, tailString(out.String(), 6000), logs)
	}
	// The run reached the end: the audit verified and the bundle checked.
	for _, want := range []string{"rounds: 5 of 5 done", "enrolled node site-03 "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("tutorial output lacks %q", want)
		}
	}
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
