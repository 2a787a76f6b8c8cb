package crypto

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seededReader is a deterministic byte stream for key generation in tests.
func seededReader(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0] = byte(seed)
	return rand.NewChaCha8(s)
}

func TestGenerateIdentityDeterministicSigningKey(t *testing.T) {
	t.Parallel()
	a, err := GenerateIdentity(RoleNode, seededReader(1))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateIdentity(RoleNode, seededReader(1))
	c, _ := GenerateIdentity(RoleNode, seededReader(2))
	if !a.SigningKey.Equal(b.SigningKey) || a.SigningKey.Equal(c.SigningKey) {
		t.Fatal("signing key is not a function of the seed")
	}
	if a.Age != nil || a.Recipient() != nil {
		t.Fatal("node has an age identity")
	}
	if _, err := GenerateIdentity("auditor", seededReader(1)); err == nil {
		t.Fatal("accepted role auditor")
	}
}

func TestSaveLoadIdentity(t *testing.T) {
	t.Parallel()
	for _, role := range Roles() {
		t.Run(string(role), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys")
			id, err := GenerateIdentity(role, seededReader(3))
			if err != nil {
				t.Fatal(err)
			}
			if err := SaveIdentity(dir, id); err != nil {
				t.Fatal(err)
			}
			st, _ := os.Stat(dir)
			if st.Mode().Perm() != 0o700 {
				t.Errorf("dir mode %v", st.Mode().Perm())
			}
			wantFiles := map[string]fs.FileMode{SigningKeyFile: 0o600, SigningPubFile: 0o644}
			if role == RoleCoordinator {
				wantFiles[AgeKeyFile], wantFiles[AgePubFile] = 0o600, 0o644
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != len(wantFiles) {
				t.Errorf("files %v, want %v", ents, wantFiles)
			}
			for name, mode := range wantFiles {
				st, err := os.Stat(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != mode {
					t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), mode)
				}
			}
			got, err := LoadIdentity(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got.Role != role || !got.SigningKey.Equal(id.SigningKey) || got.NodeID() != id.NodeID() {
				t.Fatalf("loaded %+v", got)
			}
			if role == RoleCoordinator && got.Age.String() != id.Age.String() {
				t.Fatal("age identity differs")
			}
			pub, err := LoadPublicIdentity(dir)
			if err != nil {
				t.Fatal(err)
			}
			if pub.Role != role || !pub.SigningKey.Equal(id.PublicKey()) {
				t.Fatalf("public %+v", pub)
			}
			if role == RoleCoordinator && pub.Recipient.String() != id.Recipient().String() {
				t.Fatal("recipient differs")
			}
			ageKey, _ := os.ReadFile(filepath.Join(dir, AgeKeyFile))
			if role == RoleCoordinator && !bytes.Contains(ageKey, []byte("\nAGE-SECRET-KEY-1")) {
				t.Fatalf("age key file:\n%s", ageKey)
			}

			// Never overwrite, and leave the files untouched.
			before, _ := os.ReadFile(filepath.Join(dir, SigningKeyFile))
			other, _ := GenerateIdentity(role, seededReader(4))
			if err := SaveIdentity(dir, other); !errors.Is(err, fs.ErrExist) {
				t.Fatalf("overwrite: err = %v", err)
			}
			after, _ := os.ReadFile(filepath.Join(dir, SigningKeyFile))
			if !bytes.Equal(before, after) {
				t.Fatal("signing key was overwritten")
			}
			ents2, _ := os.ReadDir(dir)
			if len(ents2) != len(wantFiles) {
				t.Fatalf("leftover files: %v", ents2)
			}
		})
	}
}

func TestLoadIdentityRejects(t *testing.T) {
	t.Parallel()
	save := func(t *testing.T, role Role) string {
		dir := t.TempDir()
		id, _ := GenerateIdentity(role, seededReader(5))
		if err := SaveIdentity(dir, id); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	t.Run("readable private key", func(t *testing.T) {
		dir := save(t, RoleNode)
		os.Chmod(filepath.Join(dir, SigningKeyFile), 0o644)
		if _, err := LoadIdentity(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("mismatched public key", func(t *testing.T) {
		dir := save(t, RoleNode)
		other, _ := GenerateIdentity(RoleNode, seededReader(6))
		os.WriteFile(filepath.Join(dir, SigningPubFile), []byte(FormatPublicKey(other.PublicKey())+"\n"), 0o644)
		if _, err := LoadIdentity(dir); !errors.Is(err, ErrMalformed) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("garbage key", func(t *testing.T) {
		dir := save(t, RoleCoordinator)
		os.WriteFile(filepath.Join(dir, AgeKeyFile), []byte("AGE-SECRET-KEY-1XYZ\n"), 0o600)
		if _, err := LoadIdentity(dir); !errors.Is(err, ErrMalformed) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := LoadIdentity(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestParsePublicKey(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	pub, err := ParsePublicKey("  " + v.NodePublicKey + "\n")
	if err != nil || !pub.Equal(v.key(t).Public()) {
		t.Fatalf("%v %v", pub, err)
	}
	for _, bad := range []string{
		"", "mfn-ed25519:", "ed25519:" + v.NodePublicKey[len(PublicKeyPrefix):],
		v.NodePublicKey[:len(v.NodePublicKey)-4], v.NodePublicKey + "AAAA",
		strings.TrimRight(v.NodePublicKey, "="), // unpadded
	} {
		if _, err := ParsePublicKey(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}

func TestParseRole(t *testing.T) {
	t.Parallel()
	for _, r := range Roles() {
		if got, err := ParseRole(string(r)); err != nil || got != r {
			t.Fatal(r, err)
		}
	}
	if _, err := ParseRole("Node"); err == nil {
		t.Fatal("accepted Node")
	}
}
