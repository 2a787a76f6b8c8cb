package provision

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mfn/mfn/coordinator/api"
	"github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/node"
)

const testProject = `origin = "mfn.test/unit"
[node_flags]
samples = 50
[[coordinators]]
id = "c1"
host = "10.0.0.1"
[[coordinators]]
id = "c2"
host = "c2.example"
bind = "0.0.0.0"
raft_port = 7002
[[sites]]
id = "site-01"
flags = { regime-mix = "4,1,1,1" }
[[operators]]
name = "admin"
role = "admin"
[[operators]]
name = "audit"
role = "auditor"
server = "c2"
`

// seeded returns a deterministic key source.
func seeded(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0] = byte(seed)
	return rand.NewChaCha8(s)
}

func mustParse(t *testing.T, text string) *Project {
	t.Helper()
	p, err := ParseProject([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func readTree(t *testing.T, root string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(root, path)
		files[filepath.ToSlash(rel)] = st.Mode().Perm().String() + "\n" + string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestParseProjectRejects(t *testing.T) {
	base := "origin = \"o\"\n[[operators]]\nname = \"a\"\nrole = \"admin\"\n"
	c1 := "[[coordinators]]\nid = \"c1\"\nhost = \"h1\"\n"
	tests := []struct{ name, text, want string }{
		{"unknown key", base + c1 + "colour = 1\n", `unknown key "coordinators.colour"`},
		{"no origin", strings.Replace(base, `origin = "o"`, "", 1) + c1, "origin"},
		{"origin with plus", strings.Replace(base, `"o"`, `"a+b"`, 1) + c1, "origin"},
		{"no coordinators", base, "no [[coordinators]]"},
		{"duplicate id", base + c1 + "[[coordinators]]\nid = \"c1\"\nhost = \"h2\"\n", `"c1" listed twice`},
		{"bad id", base + "[[coordinators]]\nid = \"c 1\"\nhost = \"h\"\n", `id "c 1"`},
		{"dot id", base + "[[coordinators]]\nid = \"..\"\nhost = \"h\"\n", `".."`},
		{"port range", base + "[[coordinators]]\nid = \"c1\"\nhost = \"h\"\nhttp_port = 70000\n", "http_port 70000"},
		{"same address", base + c1 + "[[coordinators]]\nid = \"c2\"\nhost = \"h1\"\n", "already used by c1"},
		{"wildcard host", base + "[[coordinators]]\nid = \"c1\"\nhost = \"0.0.0.0\"\n", "wildcard"},
		{"half BYO", base + c1 + "public_key = \"mfn-ed25519:AyazJpZDkvbtnJr4G75i1edtgSyfmY3VOoZqobtV+yc=\"\n", "both public_key and age_recipient"},
		{"bad site key", base + c1 + "[[sites]]\nid = \"s\"\npublic_key = \"nope\"\n", "site s: public_key"},
		{"managed flag", base + c1 + "[node_flags]\nstate-dir = \"x\"\n", `flag "state-dir" is set by the kit`},
		{"dashed flag", base + c1 + "[coordinator_flags]\n\"--tick\" = \"1s\"\n", "without dashes"},
		{"table flag", base + c1 + "[[sites]]\nid = \"s\"\n[sites.flags]\nx = [1]\n", "string, number or boolean"},
		{"bad role", "origin = \"o\"\n" + c1 + "[[operators]]\nname = \"a\"\nrole = \"root\"\n", `role "root"`},
		{"bad server", base + c1 + "[[operators]]\nname = \"b\"\nrole = \"reader\"\nserver = \"c9\"\n", `server "c9"`},
		{"bad digest", base + c1 + "[[operators]]\nname = \"b\"\nrole = \"reader\"\nkey_sha256 = \"abc\"\n", "64 hex digits"},
		{"bad tls", "http_tls = \"maybe\"\n" + base + c1, "http_tls"},
		{"relative install", "install_dir = \"etc\"\n" + base + c1, "install_dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseProject([]byte(tt.text))
			if !errors.Is(err, ErrProject) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrProject mentioning %q", err, tt.want)
			}
		})
	}
}

func TestProvisionKitsWorkWithTheReadersOfTheBinary(t *testing.T) {
	out := t.TempDir()
	p := mustParse(t, testProject)
	res, err := Provision(p, Options{Out: out, Rand: seeded(1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Created) == 0 || len(res.Replaced)+len(res.Unchanged) != 0 {
		t.Fatalf("first run: %d created, %d replaced, %d unchanged", len(res.Created), len(res.Replaced), len(res.Unchanged))
	}
	k := func(parts ...string) string { return filepath.Join(append([]string{out}, parts...)...) }

	// Identities load as the coordinator and node load them.
	c1, err := crypto.LoadIdentity(k("coordinators", "c1", "keys"))
	if err != nil || c1.Role != crypto.RoleCoordinator {
		t.Fatalf("c1 identity: %v %v", c1, err)
	}
	site, err := crypto.LoadIdentity(k("sites", "site-01", "keys"))
	if err != nil || site.Role != crypto.RoleNode {
		t.Fatalf("site identity: %v %v", site, err)
	}
	// The cluster file pins c1's keys and advertises c2's public host.
	cl, err := node.LoadCluster(k("sites", "site-01", "cluster.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if cl.Origin != "mfn.test/unit" || len(cl.Members) != 2 || !cl.Members[0].PublicKey.Equal(c1.PublicKey()) ||
		cl.Members[0].Recipient.String() != c1.Recipient().String() || cl.Members[1].QUICAddr != "c2.example:4431" {
		t.Fatalf("cluster file = %+v", cl)
	}
	// The API key file loads (mode 0600 checked by the loader) and
	// accepts the operator kits' keys with their roles, digests only.
	ks, err := api.LoadKeyFile(k("coordinators", "c2", "api-keys.toml"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(k("coordinators", "c2", "api-keys.toml"))
	for name, role := range map[string]api.Role{"admin": api.RoleAdmin, "audit": api.RoleAuditor} {
		ctl, _ := os.ReadFile(k("operators", name, "ctl.toml"))
		key := between(string(ctl), `api-key = "`, `"`)
		if id, ok := ks.Lookup(key); !ok || id.Role != role || id.Name != name {
			t.Errorf("operator %s key: %+v %v, want role %v", name, id, ok, role)
		}
		if bytes.Contains(raw, []byte(key)) {
			t.Errorf("api-keys.toml holds %s's key in the clear", name)
		}
		if !strings.Contains(string(ctl), `pin = ["mfn-ed25519:`) {
			t.Errorf("operator %s ctl.toml pins no key:\n%s", name, ctl)
		}
	}
	ctl, _ := os.ReadFile(k("operators", "audit", "ctl.toml"))
	if !strings.Contains(string(ctl), `server = "https://c2.example:8081"`) {
		t.Errorf("audit ctl.toml does not point at c2:\n%s", ctl)
	}
	// c2 binds a wildcard and advertises its host; c1 binds its host.
	c2conf, _ := os.ReadFile(k("coordinators", "c2", "coordinator.toml"))
	for _, want := range []string{`raft-addr = "0.0.0.0:7002"`, `raft-advertise = "c2.example:7002"`, `quic-advertise = "c2.example:4431"`,
		`bootstrap = "c1=10.0.0.1:7001,c2=c2.example:7002"`, `http-tls-self-signed = true`} {
		if !strings.Contains(string(c2conf), want) {
			t.Errorf("c2 coordinator.toml lacks %s:\n%s", want, c2conf)
		}
	}
	nodeConf, _ := os.ReadFile(k("sites", "site-01", "node.toml"))
	for _, want := range []string{`samples = 50`, `regime-mix = "4,1,1,1"`, `id = "site-01"`, `state-dir = "state"`} {
		if !strings.Contains(string(nodeConf), want) {
			t.Errorf("node.toml lacks %s:\n%s", want, nodeConf)
		}
	}
	// Secrets are 0600, manifests check, the site kit names its key.
	for _, f := range []string{"coordinators/c1/keys/signing.key", "coordinators/c1/keys/age.key", "coordinators/c1/logkey/log.skey",
		"coordinators/c1/api-keys.toml", "sites/site-01/keys/signing.key", "operators/admin/ctl.toml", ".provision/log.skey", ".provision/api-keys.toml"} {
		st, err := os.Stat(k(filepath.FromSlash(f)))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", f, st.Mode().Perm(), err)
		}
	}
	for _, kit := range []string{"coordinators/c1", "coordinators/c2", "sites/site-01", "operators/admin", "operators/audit"} {
		if missing, err := VerifyKit(k(filepath.FromSlash(kit))); err != nil || len(missing) != 0 {
			t.Errorf("VerifyKit(%s) = %v, %v", kit, missing, err)
		}
	}
	id, pub, err := ReadSiteKit(k("sites", "site-01"))
	if err != nil || id != "site-01" || pub != crypto.FormatPublicKey(site.PublicKey()) {
		t.Errorf("ReadSiteKit = %q %q %v", id, pub, err)
	}
}

func between(s, start, end string) string {
	_, rest, _ := strings.Cut(s, start)
	v, _, _ := strings.Cut(rest, end)
	return v
}

func TestProvisionRerunChangesNothingAndRefusesToOverwrite(t *testing.T) {
	out := t.TempDir()
	p := mustParse(t, testProject)
	if _, err := Provision(p, Options{Out: out, Rand: seeded(1)}); err != nil {
		t.Fatal(err)
	}
	before := readTree(t, out)
	// Same project, another key source: every key is read back.
	res, err := Provision(p, Options{Out: out, Rand: seeded(2)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Created)+len(res.Replaced) != 0 || len(res.Unchanged) == 0 {
		t.Fatalf("re-run: %d created, %d replaced", len(res.Created), len(res.Replaced))
	}
	if after := readTree(t, out); !equalTrees(before, after) {
		t.Fatal("re-run changed files")
	}

	// A changed port would rewrite files: refused, nothing written.
	changed := mustParse(t, strings.Replace(testProject, "raft_port = 7002", "raft_port = 7012", 1))
	_, err = Provision(changed, Options{Out: out})
	var ce *ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, ErrConflict) || !contains(ce.Paths, "coordinators/c2/coordinator.toml") {
		t.Fatalf("changed project: %v, want a ConflictError naming c2's coordinator.toml", err)
	}
	if after := readTree(t, out); !equalTrees(before, after) {
		t.Fatal("a refused run changed files")
	}
	// A file edited by hand is a conflict too, and so is a loosened mode.
	victim := filepath.Join(out, "sites", "site-01", "keys", "signing.key")
	if err := os.Chmod(victim, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Provision(p, Options{Out: out}); !errors.As(err, &ce) || !contains(ce.Paths, "sites/site-01/keys/signing.key") {
		t.Fatalf("loosened mode: %v", err)
	}
	// --force replaces exactly the differing files, with the same keys.
	res, err = Provision(changed, Options{Out: out, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if !contains(res.Replaced, "coordinators/c2/coordinator.toml") || !contains(res.Replaced, "sites/site-01/keys/signing.key") ||
		contains(res.Replaced, "coordinators/c1/keys/signing.key") {
		t.Fatalf("forced run replaced %v", res.Replaced)
	}
	after := readTree(t, out)
	if after["sites/site-01/keys/signing.key"] != before["sites/site-01/keys/signing.key"] {
		t.Fatal("forced run changed the site's key")
	}
}

func TestProvisionIsDeterministicForASeed(t *testing.T) {
	p := mustParse(t, testProject)
	a, b := t.TempDir(), t.TempDir()
	for _, out := range []string{a, b} {
		if _, err := Provision(p, Options{Out: out, Rand: seeded(9)}); err != nil {
			t.Fatal(err)
		}
	}
	ta, tb := readTree(t, a), readTree(t, b)
	// Age identities always come from the system, so only kits without
	// one (sites) and the log and API keys are equal byte for byte.
	for _, f := range []string{"sites/site-01/keys/signing.key", "sites/site-01/enrolment.txt", "operators/admin/ctl.toml", "log.vkey"} {
		if ta[f] == "" || ta[f] != tb[f] {
			t.Errorf("%s differs between two runs with one seed", f)
		}
	}
	c, d := t.TempDir(), t.TempDir()
	Provision(p, Options{Out: c, Rand: seeded(9)})
	Provision(p, Options{Out: d, Rand: seeded(10)})
	if readTree(t, c)["sites/site-01/keys/signing.key"] == readTree(t, d)["sites/site-01/keys/signing.key"] {
		t.Error("two seeds gave the same site key")
	}
}

func TestBringYourOwnKeys(t *testing.T) {
	coord, err := crypto.GenerateIdentity(crypto.RoleCoordinator, seeded(3))
	if err != nil {
		t.Fatal(err)
	}
	siteID, err := crypto.GenerateIdentity(crypto.RoleNode, seeded(4))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(testProject, "bind = \"0.0.0.0\"\n",
		"bind = \"0.0.0.0\"\npublic_key = \""+crypto.FormatPublicKey(coord.PublicKey())+"\"\nage_recipient = \""+coord.Recipient().String()+"\"\n", 1)
	text += "[[sites]]\nid = \"site-02\"\npublic_key = \"" + crypto.FormatPublicKey(siteID.PublicKey()) + "\"\n"
	out := t.TempDir()
	if _, err := Provision(mustParse(t, text), Options{Out: out, Rand: seeded(1)}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"coordinators/c2/keys/signing.key", "coordinators/c2/keys/age.key", "sites/site-02/keys/signing.key",
		".provision/identities/coordinators/c2", ".provision/identities/sites/site-02"} {
		if _, err := os.Stat(filepath.Join(out, filepath.FromSlash(f))); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists for a participant with its own keys", f)
		}
	}
	pub, err := crypto.LoadPublicIdentity(filepath.Join(out, "coordinators", "c2", "keys"))
	if err != nil || !pub.SigningKey.Equal(coord.PublicKey()) || pub.Recipient.String() != coord.Recipient().String() {
		t.Fatalf("c2 public keys: %v %v", pub, err)
	}
	// The participant adds its private files; the kit then loads.
	if err := crypto.SaveIdentity(filepath.Join(t.TempDir(), "k"), siteID); err != nil {
		t.Fatal(err)
	}
	id, key, err := ReadSiteKit(filepath.Join(out, "sites", "site-02"))
	if err != nil || id != "site-02" || key != crypto.FormatPublicKey(siteID.PublicKey()) {
		t.Fatalf("ReadSiteKit = %q %q %v", id, key, err)
	}
	enrol, _ := os.ReadFile(filepath.Join(out, EnrolmentFile))
	if !strings.Contains(string(enrol), "site-02 "+key+"\n") {
		t.Fatalf("enrolment.txt lacks site-02:\n%s", enrol)
	}
	// An operator bringing a digest gets a kit without a key.
	text += "[[operators]]\nname = \"ci\"\nrole = \"reader\"\nkey_sha256 = \"" + strings.Repeat("ab", 32) + "\"\n"
	if _, err := Provision(mustParse(t, text), Options{Out: out}); err != nil {
		t.Fatal(err)
	}
	ctl, _ := os.ReadFile(filepath.Join(out, "operators", "ci", "ctl.toml"))
	if strings.Contains(string(ctl), "\napi-key =") {
		t.Errorf("ci's ctl.toml holds a key:\n%s", ctl)
	}
	keys, _ := os.ReadFile(filepath.Join(out, "coordinators", "c1", "api-keys.toml"))
	if !strings.Contains(string(keys), strings.Repeat("ab", 32)) {
		t.Error("api-keys.toml lacks ci's digest")
	}
}

func TestAddSite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "project.toml")
	// The file ends inside an [[operators]] table without a newline.
	if err := os.WriteFile(path, []byte(strings.TrimSuffix(testProject, "\n")), 0o640); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "kits")
	p, _ := LoadProject(path)
	if _, err := Provision(p, Options{Out: out}); err != nil {
		t.Fatal(err)
	}
	before := readTree(t, out)
	np, err := AddSite(path, "site-09", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(np.Sites) != 2 || np.Sites[1].ID != "site-09" || len(np.Operators) != 2 {
		t.Fatalf("after add-site: sites %+v operators %d", np.Sites, len(np.Operators))
	}
	res, err := Provision(np, Options{Out: out})
	if err != nil {
		t.Fatal(err)
	}
	// Only the new kit and the lists of sites change, by growing: no
	// --force needed.
	if len(res.Replaced) != 0 {
		t.Errorf("add-site replaced %v", res.Replaced)
	}
	for _, f := range res.Extended {
		if f != EnrolmentFile && f != "operators/admin/"+EnrolmentFile && f != "operators/audit/"+EnrolmentFile && !strings.HasSuffix(f, ManifestFile) {
			t.Errorf("add-site extended %s", f)
		}
	}
	if !contains(res.Extended, EnrolmentFile) {
		t.Errorf("add-site did not extend %s: %v", EnrolmentFile, res.Extended)
	}
	if !contains(res.Created, "sites/site-09/keys/signing.key") {
		t.Fatalf("add-site created %v", res.Created)
	}
	after := readTree(t, out)
	for f, v := range before {
		if strings.HasPrefix(f, "coordinators/") && after[f] != v {
			t.Errorf("add-site changed %s", f)
		}
	}
	if _, err := AddSite(path, "site-09", ""); !errors.Is(err, ErrProject) {
		t.Fatalf("second add-site: %v", err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Errorf("project file mode %v, want 0640 kept", st.Mode().Perm())
	}
}

func TestVerifyKitDetectsTampering(t *testing.T) {
	out := t.TempDir()
	if _, err := Provision(mustParse(t, testProject), Options{Out: out}); err != nil {
		t.Fatal(err)
	}
	kit := filepath.Join(out, "sites", "site-01")
	if err := os.Remove(filepath.Join(kit, "keys", "signing.key")); err != nil {
		t.Fatal(err)
	}
	missing, err := VerifyKit(kit)
	if err != nil || len(missing) != 1 || missing[0] != "keys/signing.key" {
		t.Fatalf("VerifyKit without the private key = %v, %v", missing, err)
	}
	if _, _, err := ReadSiteKit(kit); err != nil {
		t.Fatalf("ReadSiteKit of the public files: %v", err)
	}
	other, _ := crypto.GenerateIdentity(crypto.RoleNode, seeded(5))
	if err := os.WriteFile(filepath.Join(kit, "keys", "signing.pub"), []byte(crypto.FormatPublicKey(other.PublicKey())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadSiteKit(kit); !errors.Is(err, ErrKit) || !strings.Contains(err.Error(), "signing.pub does not match") {
		t.Fatalf("ReadSiteKit of a swapped key = %v", err)
	}
	if _, err := VerifyKit(t.TempDir()); !errors.Is(err, ErrKit) {
		t.Fatalf("VerifyKit of an empty folder = %v", err)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func equalTrees(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestInputLimits(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "project.toml")
	data := []byte(testProject + "# " + strings.Repeat("x", maxProjectFile) + "\n")
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadProject(big); !errors.Is(err, ErrProject) {
		t.Fatalf("project of %d bytes: %v, want ErrProject", len(data), err)
	}
	var many strings.Builder
	many.WriteString("origin = \"o\"\n[[coordinators]]\nid = \"c1\"\nhost = \"h\"\n[[operators]]\nname = \"a\"\nrole = \"admin\"\n")
	for i := range maxParticipants + 1 {
		fmt.Fprintf(&many, "[[sites]]\nid = \"s%d\"\n", i)
	}
	if _, err := ParseProject([]byte(many.String())); !errors.Is(err, ErrProject) || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("%d sites: %v, want the list limit", maxParticipants+1, err)
	}
	kit := t.TempDir()
	if err := os.WriteFile(filepath.Join(kit, ManifestFile), bytes.Repeat([]byte("a"), maxKitFile+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyKit(kit); !errors.Is(err, ErrKit) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized manifest: %v", err)
	}
}
