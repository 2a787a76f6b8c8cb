package compose_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mfn/mfn/internal/clustertest"
)

// composeProject is the Compose project name the test uses, so that it
// never touches a stack a developer brought up from the same file.
const composeProject = "mfnci"

// dockerEnv runs docker and compose commands for the test.
type dockerEnv struct {
	t       *testing.T
	ctx     context.Context
	compose []string // "docker compose" or "docker-compose", with -p and -f
	root    string
	mfn     string
	admin   string // the admin kit's ctl.toml
	ports   []string
}

func (d *dockerEnv) run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(d.ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = d.root
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "MFN_CONFIG=", "MFN_SERVER=", "MFN_API_KEY=",
		"MFN_C1_PORT="+d.ports[0], "MFN_C2_PORT="+d.ports[1], "MFN_C3_PORT="+d.ports[2])
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func (d *dockerEnv) must(name string, args ...string) string {
	d.t.Helper()
	out, err := d.run(name, args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

func (d *dockerEnv) composeCmd(args ...string) (string, error) {
	return d.run(d.compose[0], append(append([]string{}, d.compose[1:]...), args...)...)
}

// container returns the id of a service's container.
func (d *dockerEnv) container(service string) string {
	d.t.Helper()
	out, err := d.composeCmd("ps", "-q", service)
	if err != nil || strings.TrimSpace(out) == "" {
		d.t.Fatalf("container of %s: %q %v", service, out, err)
	}
	return strings.TrimSpace(out)
}

// ctl runs mfn ctl with the admin kit against the API published for
// member i (0-based).
func (d *dockerEnv) ctl(i int, args ...string) (string, error) {
	return d.run(d.mfn, append([]string{"ctl", "--config", d.admin, "--server", "https://127.0.0.1:" + d.ports[i], "--timeout", "10s"}, args...)...)
}

type status struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	LeaderID string `json:"leader_id"`
}

// leader asks the members in turn and returns the leader's index.
func (d *dockerEnv) leader(skip int) (int, error) {
	var last error
	for i := range 3 {
		if i == skip {
			continue
		}
		out, err := d.ctl(i, "cluster", "status", "--json")
		if err != nil {
			last = err
			continue
		}
		var s status
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			last = err
			continue
		}
		if s.LeaderID != "" && s.LeaderID != fmt.Sprintf("c%d", skip+1) {
			var n int
			if _, err := fmt.Sscanf(s.LeaderID, "c%d", &n); err == nil && n >= 1 && n <= 3 {
				return n - 1, nil
			}
		}
		last = fmt.Errorf("member c%d knows no leader", i+1)
	}
	return -1, last
}

type job struct {
	State     string `json:"state"`
	Rounds    uint64 `json:"rounds"`
	Completed uint64 `json:"completed"`
	Failed    uint64 `json:"failed"`
}

func (d *dockerEnv) job(id string) (job, error) {
	var j job
	var err error
	for i := range 3 {
		var out string
		if out, err = d.ctl(i, "jobs", "get", id, "--json"); err == nil {
			err = json.Unmarshal([]byte(out), &j)
			if err == nil {
				return j, nil
			}
		}
	}
	return j, err
}

func (d *dockerEnv) waitCompleted(id string, atLeast uint64, timeout time.Duration) job {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	defer cancel()
	var j job
	err := clustertest.Poll(ctx, fmt.Sprintf("job %s with %d rounds completed", id, atLeast), func() (bool, error) {
		var err error
		j, err = d.job(id)
		return err == nil && (j.Completed >= atLeast || j.State != "running"), err
	})
	if err != nil {
		d.t.Fatalf("%v (job %+v)", err, j)
	}
	return j
}

// TestComposeFederationSurvivesFaults brings up deploy/compose.yaml (3
// coordinators, 3 nodes, kits from mfn provision) and runs a 12-round job
// whose rounds need all 3 nodes. With node n3 paused, round 1 stays open
// while the test kills the leader's container, disconnects another member
// from the network and restarts node n2's container; then n3 resumes.
// The test checks through
// the published API ports that every round completed, that the audit log
// verifies offline, that every update a node holds an acknowledgement
// for is in its round exactly once and that no node has two updates in
// one round. "compose down -v" must then leave no container, volume or
// network of the project. Needs Docker, the image of scripts/image.sh and
// root (the kits are handed to the image's user 65532); runs only with
// MFN_DOCKER_TEST=1.
func TestComposeFederationSurvivesFaults(t *testing.T) {
	if os.Getenv("MFN_DOCKER_TEST") != "1" {
		t.Skip("set MFN_DOCKER_TEST=1 to run the Docker Compose test (needs Docker and scripts/image.sh)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to hand the kits to the container user 65532")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Minute)
	defer cancel()
	root, err := clustertest.ModuleRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := clustertest.BuildMFN(ctx, root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d := &dockerEnv{t: t, ctx: ctx, root: root, mfn: bin, ports: []string{"28081", "28082", "28083"}}
	if _, err := d.run("docker", "compose", "version"); err == nil {
		d.compose = []string{"docker", "compose"}
	} else {
		d.compose = []string{"docker-compose"}
	}
	d.compose = append(d.compose, "-p", composeProject, "-f", filepath.Join(root, "deploy", "compose.yaml"))
	image := os.Getenv("MFN_IMAGE")
	if image == "" {
		image = "mfn:local"
	}
	if _, err := d.run("docker", "image", "inspect", image); err != nil {
		t.Fatalf("image %s missing: run scripts/image.sh first (%v)", image, err)
	}

	// Kits: provisioned fresh into deploy/compose/kits (where compose.yaml
	// mounts them from), owned by the image's user.
	kits := filepath.Join(root, "deploy", "compose", "kits")
	if err := os.RemoveAll(kits); err != nil {
		t.Fatal(err)
	}
	d.must(bin, "provision", "--project", filepath.Join(root, "deploy", "compose", "project.toml"), "--out", kits)
	d.admin = filepath.Join(t.TempDir(), "ctl.toml")
	adminKit, err := os.ReadFile(filepath.Join(kits, "operators", "admin", "ctl.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.admin, adminKit, 0o600); err != nil {
		t.Fatal(err)
	}
	d.must("chown", "-R", "65532:65532", kits)
	t.Cleanup(func() { os.RemoveAll(kits) })

	_, _ = d.composeCmd("down", "-v", "--remove-orphans") // a previous run's leftovers
	if out, err := d.composeCmd("up", "-d"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	downed := false
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := d.composeCmd("logs", "--tail", "20")
			t.Logf("compose logs:\n%s", logs)
		}
		if !downed {
			_, _ = d.composeCmd("down", "-v", "--remove-orphans")
		}
	})

	waitLeader := func(skip int) int {
		t.Helper()
		lctx, lcancel := context.WithTimeout(ctx, 2*time.Minute)
		defer lcancel()
		var l int
		if err := clustertest.Poll(lctx, "a leader", func() (bool, error) {
			var err error
			l, err = d.leader(skip)
			return err == nil, err
		}); err != nil {
			t.Fatal(err)
		}
		return l
	}
	leader := waitLeader(-1)
	t.Logf("leader c%d", leader+1)
	for _, n := range []string{"n1", "n2", "n3"} {
		// Retried: a new leader publishes its HTTP address a moment after
		// its election, and writes need it.
		ectx, ecancel := context.WithTimeout(ctx, time.Minute)
		err := clustertest.Poll(ectx, "enrolment of "+n, func() (bool, error) {
			_, err := d.ctl(leader, "nodes", "enroll", "--kit", filepath.Join(kits, "sites", n))
			return err == nil, err
		})
		ecancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Node n3 is paused before the job starts, so that round 1 cannot
	// close (it needs all 3 updates) while the faults happen.
	d.must("docker", "pause", d.container("n3"))
	const rounds = 12
	if _, err := d.ctl(leader, "jobs", "create", "--id", "compose-1", "--task", "mfn-regime", "--dim", "76",
		"--rule", "fedavg", "--f", "0", "--rounds", fmt.Sprint(rounds), "--min-updates", "3", "--max-updates", "3",
		"--round-deadline", "3m"); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 3*time.Minute)
	defer rcancel()
	if err := clustertest.Poll(rctx, "two updates in round 1", func() (bool, error) {
		out, err := d.ctl(leader, "rounds", "get", "compose-1", "1", "--json")
		if err != nil {
			return false, err
		}
		var r struct {
			Updates []json.RawMessage `json:"updates"`
		}
		err = json.Unmarshal([]byte(out), &r)
		return err == nil && len(r.Updates) >= 2, err
	}); err != nil {
		t.Fatal(err)
	}

	// Fault 1: kill the leader's container mid-round, wait for another
	// leader, start it again.
	victim := fmt.Sprintf("c%d", leader+1)
	d.must("docker", "kill", d.container(victim))
	newLeader := waitLeader(leader)
	t.Logf("killed %s; new leader c%d", victim, newLeader+1)
	if out, err := d.composeCmd("start", victim); err != nil {
		t.Fatalf("start %s: %v %s", victim, err, out)
	}

	// Fault 2: cut a follower off the network while rounds go on.
	follower := 3 - leader - newLeader // neither the killed member nor the new leader
	fname := fmt.Sprintf("c%d", follower+1)
	fid := d.container(fname)
	network := strings.TrimSpace(d.must("docker", "network", "ls", "-q", "--filter", "label=com.docker.compose.project="+composeProject))
	if network == "" || strings.Contains(network, "\n") {
		t.Fatalf("want one network of project %s, got %q", composeProject, network)
	}
	d.must("docker", "network", "disconnect", network, fid)

	// Fault 3: restart a node's container; its state volume stays.
	before, err := d.acks("n2")
	if err != nil {
		t.Fatal(err)
	}
	d.must("docker", "restart", d.container("n2"))
	d.must("docker", "unpause", d.container("n3"))
	j := d.waitCompleted("compose-1", rounds/2, 4*time.Minute)
	if j.Failed != 0 {
		t.Fatalf("job = %+v, want no failed round", j)
	}
	d.must("docker", "network", "connect", "--alias", fname, network, fid)
	t.Logf("disconnected %s until round %d", fname, j.Completed)
	// The queries below go to the member that was cut off: it must have
	// caught up.
	j = d.waitCompleted("compose-1", rounds, 6*time.Minute)
	if j.State != "completed" || j.Completed != rounds || j.Failed != 0 {
		t.Fatalf("job = %+v, want %d rounds completed, none failed", j, rounds)
	}
	cctx, ccancel := context.WithTimeout(ctx, 2*time.Minute)
	defer ccancel()
	if err := clustertest.Poll(cctx, fname+" caught up", func() (bool, error) {
		out, err := d.ctl(follower, "jobs", "get", "compose-1", "--json")
		if err != nil {
			return false, err
		}
		var fj job
		err = json.Unmarshal([]byte(out), &fj)
		return err == nil && fj.Completed == rounds, err
	}); err != nil {
		t.Fatal(err)
	}

	// Every round completed with a model, seen through any member.
	out, err := d.ctl(follower, "rounds", "list", "compose-1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var list []struct {
		Number uint64 `json:"number"`
		State  string `json:"state"`
	}
	var page struct {
		Rounds json.RawMessage `json:"rounds"`
	}
	if err := json.Unmarshal([]byte(out), &page); err == nil && len(page.Rounds) > 0 {
		out = string(page.Rounds)
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("rounds list: %v\n%s", err, out)
	}
	if len(list) != rounds {
		t.Fatalf("%d rounds listed, want %d", len(list), rounds)
	}
	for _, r := range list {
		if r.State != "closed" {
			t.Errorf("round %d is %s, want closed", r.Number, r.State)
		}
	}

	// Updates: per round, from the API.
	type update struct {
		Node       string `json:"node"`
		UpdateHash string `json:"update_hash"`
	}
	inRound := map[uint64][]update{}
	for n := uint64(1); n <= rounds; n++ {
		out, err := d.ctl(follower, "rounds", "get", "compose-1", fmt.Sprint(n), "--json")
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Updates []update `json:"updates"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, u := range r.Updates {
			if seen[u.Node] {
				t.Errorf("round %d holds two updates of %s", n, u.Node)
			}
			seen[u.Node] = true
		}
		inRound[n] = r.Updates
	}
	// Acknowledgements: what each node recorded in its volume.
	total := 0
	for _, n := range []string{"n1", "n2", "n3"} {
		acks, err := d.acks(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range acks {
			if a.Job != "compose-1" {
				continue
			}
			total++
			count := 0
			for _, u := range inRound[a.Round] {
				if u.Node == n && u.UpdateHash == a.UpdateHash {
					count++
				}
			}
			if count != 1 {
				t.Errorf("%s's acknowledged update of round %d (%s) is in the round %d times", n, a.Round, a.UpdateHash, count)
			}
		}
		if n == "n2" && len(acks) < len(before) {
			t.Errorf("n2 lost acknowledgements across its restart: %d before, %d after", len(before), len(acks))
		}
	}
	if total < 2*rounds {
		t.Errorf("%d acknowledged updates for %d rounds, want at least %d (min-updates 2)", total, rounds, 2*rounds)
	}

	// The audit log verifies offline with the project's public files.
	export := filepath.Join(t.TempDir(), "auditlog")
	if _, err := d.ctl(follower, "audit", "export", "--out", export); err != nil {
		t.Fatal(err)
	}
	d.must(bin, "audit", "verify-log", export, "--log-key", "@"+filepath.Join(kits, "log.vkey"),
		"--node-keys", filepath.Join(kits, "enrolment.txt"))

	// down -v leaves nothing of the project behind.
	if out, err := d.composeCmd("down", "-v", "--remove-orphans"); err != nil {
		t.Fatalf("compose down: %v %s", err, out)
	}
	downed = true
	label := "label=com.docker.compose.project=" + composeProject
	for _, what := range [][]string{{"ps", "-aq", "--filter", label}, {"volume", "ls", "-q", "--filter", label}, {"network", "ls", "-q", "--filter", label}} {
		if out := strings.TrimSpace(d.must("docker", what...)); out != "" {
			t.Errorf("after down -v, docker %s lists %q", strings.Join(what, " "), out)
		}
	}
}

type ack struct {
	Job        string `json:"job"`
	Round      uint64 `json:"round"`
	UpdateHash string `json:"update_hash"`
}

// acks reads a node's acknowledgement records from its container.
func (d *dockerEnv) acks(service string) ([]ack, error) {
	out, err := d.run("docker", "exec", d.container(service), "/mfn", "node", "acks", "--state-dir", "/var/lib/mfn/state", "--json")
	if err != nil {
		return nil, err
	}
	var acks []ack
	if err := json.Unmarshal([]byte(out), &acks); err != nil {
		return nil, errors.Join(err, fmt.Errorf("node acks of %s: %s", service, out))
	}
	return acks, nil
}
