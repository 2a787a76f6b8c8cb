package provision

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mfn/mfn/crypto"
)

// FuzzParseProject: no project file, however malformed, panics, and an
// accepted project renders kits.
func FuzzParseProject(f *testing.F) {
	f.Add([]byte(testProject))
	f.Add([]byte("origin = \"o\"\n[[coordinators]]\nid = \"c1\"\nhost = \"h\"\n[[operators]]\nname = \"a\"\nrole = \"admin\"\n"))
	f.Add([]byte("[[coordinators]]\nflags = { a = 1 }\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProject(data)
		if err != nil {
			return
		}
		if len(p.Coordinators)+len(p.Sites) > 8 {
			return // keep each input cheap: keys are generated
		}
		_, _ = render(p, &secrets{dir: t.TempDir(), rand: seeded(1), apiKeys: map[string]string{}, idents: map[string]*crypto.Identity{}})
	})
}

// FuzzVerifyKit: a manifest from an untrusted kit never panics nor reads
// outside the kit.
func FuzzVerifyKit(f *testing.F) {
	f.Add([]byte("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a.txt\n"))
	f.Add([]byte("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  ../x\n"))
	f.Add([]byte("zz  /etc/passwd\n\n"))
	f.Fuzz(func(t *testing.T, manifest []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ManifestFile), manifest, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "a.txt"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		_, _ = VerifyKit(dir)
		_, _, _ = ReadSiteKit(dir)
	})
}
