package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	mfncrypto "github.com/mfn/mfn/crypto"
)

func runMFN(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestKeygenExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"keygen", "--role", "auditor", "--out", filepath.Join(dir, "a")}, exitUsage, `--role "auditor": must be one of node, coordinator`},
		{[]string{"keygen", "--role", "node"}, exitUsage, "--out is required"},
		{[]string{"keygen", "--role", "node", "--out", filepath.Join(dir, "n")}, exitOK, ""},
		{[]string{"keygen", "--role", "node", "--out", filepath.Join(dir, "n")}, exitFailure, "refusing to overwrite"},
	}
	for _, c := range cases {
		code, _, stderr := runMFN(c.args...)
		if code != c.code || !strings.Contains(stderr, c.msg) {
			t.Errorf("%v: exit %d stderr %q, want exit %d containing %q", c.args, code, stderr, c.code, c.msg)
		}
	}
}

func TestKeygenFilesLoad(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "coord")
	code, stdout, stderr := runMFN("keygen", "--role", "coordinator", "--out", dir)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	id, err := mfncrypto.LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{id.NodeID(), mfncrypto.FormatPublicKey(id.PublicKey()), id.Recipient().String()} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %s:\n%s", want, stdout)
		}
	}
	for name, mode := range map[string]os.FileMode{mfncrypto.SigningKeyFile: 0o600, mfncrypto.AgeKeyFile: 0o600, ".": 0o700} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, st.Mode().Perm(), mode)
		}
	}
}
