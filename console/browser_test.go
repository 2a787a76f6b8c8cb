package console_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/internal/clustertest"
)

// shotsEnv names a directory to write the console screenshots to (the
// documentation's are made with MFN_CONSOLE_SHOTS=$PWD/docs/console).
const shotsEnv = "MFN_CONSOLE_SHOTS"

func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("browser test skipped: no chromium on PATH (Debian: apt-get install -y chromium)")
	return ""
}

// TestBrowser drives the console in headless chromium against a real
// cluster (one `mfn coordinator` process, test nodes over QUIC): the
// pages render, the rounds table grows while rounds run (WebSocket, no
// reload), a Byzantine update rejected by Krum shows the rule's reason,
// a reader cannot stop a job, an operator can (with the confirmation),
// and logging out ends the session.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	chrome := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	root, err := clustertest.ModuleRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := clustertest.BuildMFN(ctx, root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := clustertest.Start(t, clustertest.Config{Binary: bin, Members: 1, OperatorKeys: 1})
	m := c.Members[0]
	if err := c.WaitReady(ctx, m); err != nil {
		t.Fatal(err)
	}
	base := "http://" + m.HTTPAddr

	const nNodes, dim, job = 5, 8, "browser"
	nodes, err := c.NewNodes(nNodes, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	if err := c.Enroll(ctx, nodes); err != nil {
		t.Fatal(err)
	}
	spec := coordinator.JobSpec{ID: job, Task: "browser", Dim: dim, Rule: coordinator.RuleSpec{Name: "krum", F: 1},
		Rounds: 10, MinUpdates: nNodes, MaxUpdates: nNodes,
		RoundDeadline: coordinator.Duration(10 * time.Minute), HardDeadline: coordinator.Duration(20 * time.Minute)}
	if _, err := c.CreateJob(ctx, spec); err != nil {
		t.Fatal(err)
	}
	byz := nodes[nNodes-1].ID
	// runRound submits one update per node; the last node is Byzantine
	// (every value 50, far from the honest ones).
	runRound := func(n uint64) coordinator.Round {
		t.Helper()
		r, err := c.WaitRound(ctx, job, n, "open", func(r coordinator.Round) bool { return r.State == coordinator.RoundOpen })
		if err != nil {
			t.Fatal(err)
		}
		for i, nd := range nodes {
			vals := make([]float64, dim)
			for j := range vals {
				vals[j] = 0.01 * float64((i+j)%3)
				if nd.ID == byz {
					vals[j] = 50
				}
			}
			sealed, _, err := nd.Seal(job, n, r.BaseHash, vals, 100)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := nd.Submit(ctx, sealed); err != nil {
				t.Fatalf("round %d: %s: %v", n, nd.ID, err)
			}
		}
		r, err = c.WaitRound(ctx, job, n, "closed", func(r coordinator.Round) bool { return r.State == coordinator.RoundClosed })
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r1 := runRound(1)

	// The link from `mfn ctl console` logs the browser in as the operator.
	out, stderr, err := c.MFN(ctx, "ctl", "--server", base, "--api-key", c.OperatorKeys[0], "console")
	if err != nil {
		t.Fatalf("mfn ctl console: %v: %s", err, stderr)
	}
	link := strings.SplitN(string(out), "\n", 2)[0]
	if !strings.HasPrefix(link, base+"/ui/?token=") {
		t.Fatalf("mfn ctl console printed %q, want a %s/ui/?token= link", out, base)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1100, 760))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if err := chromedp.Do(bctx); err != nil { // starts the browser (no timeout on this first call)
		t.Fatalf("chromium %s: %v", chrome, err)
	}
	b := &browser{t: t, ctx: bctx}

	shots := os.Getenv(shotsEnv)
	if shots == "" {
		shots = t.TempDir()
	}
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			png, err := chromedp.CaptureScreenshot()(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644)
		})
	}
	rendered := func(hash string) chromedp.Action[chromedp.Void] {
		return chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`body[data-rendered="%s"]`, hash)))
	}
	// hash moves the loaded console to another page.
	hash := func(h string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := chromedp.Evaluate[any](fmt.Sprintf(`location.hash = %q`, h))(ctx, tg); err != nil {
				return err
			}
			_, err := rendered(h)(ctx, tg)
			return err
		})
	}
	visible := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }
	text := func(sel string) string { return get(b, "text of "+sel, chromedp.Text(chromedp.CSS(sel))) }
	count := func(sel string) int {
		return get(b, "count "+sel, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	}
	location := func() string { return get(b, "location", chromedp.Location()) }

	b.do("open the login link", chromedp.Navigate(link), rendered("#/cluster"))
	if url := location(); url != base+"/ui/" {
		t.Fatalf("after the link the browser is at %q, want the clean %s/ui/", url, base)
	}
	if who := text("#who"); !strings.Contains(who, "operator") {
		t.Fatalf("header says %q, want the operator role", who)
	}
	b.do("cluster page", visible(`#members tbody tr`), shot("cluster"))
	if leader := text(`#cluster-status tbody tr td:nth-child(3)`); leader != m.ID {
		t.Fatalf("cluster page shows leader %q, want %s", leader, m.ID)
	}
	// The link works once.
	b.do("reuse the link", chromedp.Navigate(link), visible(`#login`))
	if url := location(); !strings.HasSuffix(url, "/ui/login#expired") {
		t.Fatalf("second use of the link went to %q, want /ui/login#expired", url)
	}

	b.do("jobs page", chromedp.Navigate(base+"/ui/"), rendered("#/cluster"), hash("#/jobs"),
		visible(`#jobs tr[data-job="browser"]`), shot("jobs"))

	b.do("job page", hash("#/jobs/"+job), visible(`#rounds tbody tr[data-round="1"]`), visible(`#live:not(.off)`))
	before := count(`#rounds tbody tr`)
	// Rounds run while the page is open: the table grows without a reload.
	runRound(2)
	b.do("round 2 appears live", visible(`#rounds tbody tr[data-round="2"] + tr[data-round="1"]`))
	b.do("round 3 appears live", visible(`#rounds tbody tr[data-round="3"]`))
	if after := count(`#rounds tbody tr`); after <= before {
		t.Fatalf("rounds table has %d rows after a round ran, %d before", after, before)
	}

	// The Byzantine update of round 1 shows Krum's reason, as the API has it.
	var want string
	for _, u := range r1.Updates {
		if u.Node == byz {
			if u.Used || u.Reason == "" {
				t.Fatalf("round 1: Krum used the Byzantine update or gave no reason: %+v", u)
			}
			want = u.Reason
		}
	}
	sel := fmt.Sprintf(`#updates tbody tr.rejected[data-node=%q]`, byz)
	b.do("byzantine row", visible(sel), shot("job"),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[any](`document.getElementById('updates').scrollIntoView()`)(ctx, tg)
			return err
		}), shot("updates"))
	if verdict, reason := text(sel+` td:nth-child(3)`), text(sel+` td:nth-child(4)`); verdict != "rejected" || reason != want {
		t.Fatalf("Byzantine row: verdict %q reason %q; want rejected, %q", verdict, reason, want)
	}

	b.do("nodes page", hash("#/nodes"), visible(fmt.Sprintf(`#nodes tr[data-node=%q]`, byz)), shot("nodes"))
	if rej := text(fmt.Sprintf(`#nodes tr[data-node=%q] td:nth-child(6)`, byz)); rej != "2" {
		t.Fatalf("nodes page: %s has %q rejections, want 2 (rounds 1 and 2)", byz, rej)
	}
	b.do("audit page", hash("#/audit"), visible(`#checkpoints tbody tr`), shot("audit"))
	if size := text(`#tree-size`); size == "0" || size == "" {
		t.Fatalf("audit page: tree size %q after 2 rounds", size)
	}

	// The proof bundle link downloads with the session (operator ≥ auditor).
	if st := get(b, "bundle link", chromedp.Evaluate[int](`fetch(document.getElementById('bundle-link').href).then(r => r.ok ? r.json().then(() => r.status) : r.status)`, chromedp.EvalAwaitPromise)); st != 200 {
		t.Fatalf("proof bundle link: %d, want 200 with a JSON bundle", st)
	}

	// Logging out ends the session: the old cookie no longer reads the API.
	b.do("log out", chromedp.Click(chromedp.CSS(`#logout`)), visible(`#login`))
	if url := location(); !strings.HasSuffix(url, "/ui/login#out") {
		t.Fatalf("after logout at %q", url)
	}
	status := func(expr string) int {
		return get(b, "fetch", chromedp.Evaluate[int](expr, chromedp.EvalAwaitPromise))
	}
	if st := status(`fetch('/v1/jobs').then(r => r.status)`); st != 401 {
		t.Fatalf("GET /v1/jobs after logout: %d, want 401", st)
	}
	b.do("console after logout", chromedp.Navigate(base+"/ui/"), visible(`#login`), shot("login"))

	// A reader logs in with the form: the Stop button is disabled, and a
	// forged stop (with the session's CSRF token) is refused by the server.
	login := func(key string) {
		t.Helper()
		b.do("log in", chromedp.Navigate(base+"/ui/login"), visible(`#key`),
			chromedp.SendKeys(chromedp.CSS(`#key`), key), chromedp.Submit(chromedp.CSS(`#login`)), rendered("#/cluster"))
	}
	login(c.ReaderKey)
	b.do("reader job page", hash("#/jobs/"+job), visible(`button[data-stop]`))
	if !get(b, "stop disabled", chromedp.Evaluate[bool](`document.querySelector('button[data-stop]').disabled`)) {
		t.Fatal("the Stop button is enabled for a reader")
	}
	// The refusal is the API's role check (the CSRF checks passed).
	if msg := get(b, "forged stop", chromedp.Evaluate[string](`fetch('/ui/session').then(r => r.json()).then(s =>
		fetch('/v1/jobs/browser/stop', {method: 'POST', headers: {'X-CSRF-Token': s.csrf, 'Content-Type': 'application/json'}, body: '{}'}))
		.then(r => r.text().then(t => r.status + ' ' + t))`, chromedp.EvalAwaitPromise)); !strings.HasPrefix(msg, "403 ") || !strings.Contains(msg, "needs operator") {
		t.Fatalf("reader's stop: %q, want 403 from the role check", msg)
	}
	b.do("reader audit page", hash("#/audit"), visible(`#audit-denied`))
	if j, err := c.API(m, c.ReaderKey).Job(ctx, job); err != nil || j.State != coordinator.JobRunning {
		t.Fatalf("after the reader's attempt the job is %v (%v), want running", j.State, err)
	}
	b.do("reader logs out", chromedp.Click(chromedp.CSS(`#logout`)), visible(`#login`))

	// The operator stops the job through the confirmation dialog.
	login(c.OperatorKeys[0])
	b.do("operator stops the job", hash("#/jobs/"+job), chromedp.Click(chromedp.CSS(`button[data-stop]`)),
		visible(`#confirm[open]`), shot("confirm"), chromedp.Click(chromedp.CSS(`#confirm-ok`)))
	get(b, "job stopped", chromedp.Poll[bool](`document.getElementById('job-state') !== null && document.getElementById('job-state').textContent === 'stopped'`,
		chromedp.WithPollingTimeout(20*time.Second)))
	if j, err := c.API(m, c.ReaderKey).Job(ctx, job); err != nil || j.State != coordinator.JobStopped {
		t.Fatalf("after the operator's stop the job is %v (%v), want stopped", j.State, err)
	}
}

// browser runs steps in one tab, each call bounded to 30 s.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	get(b, what, chromedp.Steps(steps...))
}

func get[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}
