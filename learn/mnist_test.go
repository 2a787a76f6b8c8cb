package learn

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/dirhash"
)

func TestGoMNISTHashMatchesGoSum(t *testing.T) {
	b, err := os.ReadFile("../go.sum")
	if err != nil {
		t.Fatal(err)
	}
	line := gomnistModule + " " + gomnistVersion + " " + gomnistZipHash + "\n"
	if !strings.Contains(string(b), line) {
		t.Fatalf("go.sum has no line %q; update gomnistVersion and gomnistZipHash", line)
	}
}

// idxGz is a gzip-compressed IDX file of unsigned bytes.
func idxGz(t *testing.T, dims []uint32, data []byte) []byte {
	t.Helper()
	var raw bytes.Buffer
	raw.Write([]byte{0, 0, 8, byte(len(dims))})
	for _, d := range dims {
		_ = binary.Write(&raw, binary.BigEndian, d)
	}
	raw.Write(data)
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return z.Bytes()
}

// tinyMNIST returns the four files of a 3-train, 2-test MNIST-layout set of
// 2×2 images, by name.
func tinyMNIST(t *testing.T) map[string][]byte {
	return map[string][]byte{
		"train-images-idx3-ubyte.gz": idxGz(t, []uint32{3, 2, 2}, []byte{0, 255, 0, 255, 1, 2, 3, 4, 9, 9, 9, 9}),
		"train-labels-idx1-ubyte.gz": idxGz(t, []uint32{3}, []byte{7, 1, 9}),
		"t10k-images-idx3-ubyte.gz":  idxGz(t, []uint32{2, 2, 2}, []byte{255, 255, 255, 255, 0, 0, 0, 0}),
		"t10k-labels-idx1-ubyte.gz":  idxGz(t, []uint32{2}, []byte{3, 4}),
	}
}

// noNetwork are options under which LocateMNIST finds nothing locally
// and cannot reach a proxy: the proxy is a closed loopback port.
func noNetwork(t *testing.T) MNISTOptions {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return MNISTOptions{CacheDir: filepath.Join(t.TempDir(), "mnist"), ModCache: t.TempDir(), GoCommand: "-", GOPROXY: "http://" + addr}
}

func TestLocateMNISTDataDir(t *testing.T) {
	dir := t.TempDir()
	for name, b := range tinyMNIST(t) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := noNetwork(t)
	o.DataDir = dir
	got, err := LocateMNIST(context.Background(), o)
	if err != nil || got != dir {
		t.Fatalf("LocateMNIST = %q, %v; want %q", got, err, dir)
	}
	train, test, err := LoadMNIST(got)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 3 || test.Len() != 2 || train.Dim != 4 || train.Y[2] != 9 || test.Y[1] != 4 || train.X[1] != 1 {
		t.Fatalf("train %d×%d %v %v, test %d %v", train.Len(), train.Dim, train.Y, train.X[:4], test.Len(), test.Y)
	}
	// A data dir missing a file is refused with the way to fix it.
	os.Remove(filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"))
	_, err = LocateMNIST(context.Background(), o)
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "t10k-labels-idx1-ubyte") || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("err = %v", err)
	}
}

func TestLocateMNISTNotFound(t *testing.T) {
	o := noNetwork(t)
	_, err := LocateMNIST(context.Background(), o)
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("err = %v, want ErrNotInstalled", err)
	}
	for _, want := range []string{"--data-dir DIR", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
		gomnistModule + "@" + gomnistVersion, o.CacheDir, o.GOPROXY} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if _, err := os.Stat(o.CacheDir); !os.IsNotExist(err) {
		t.Errorf("cache dir %s exists after a failed fetch", o.CacheDir)
	}
	// No go command on the machine: the same answer, not "executable file not found".
	o.GoCommand = "mfn-test-no-such-go-command"
	if _, err := LocateMNIST(context.Background(), o); !errors.Is(err, ErrNotInstalled) || strings.Contains(err.Error(), "executable file not found") {
		t.Fatalf("without go: err = %v", err)
	}
	// GOPROXY=off: no fetch at all.
	o.GOPROXY = "off"
	if _, err := LocateMNIST(context.Background(), o); !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "GOPROXY names no proxy") {
		t.Fatalf("GOPROXY=off: err = %v", err)
	}
}

// gomnistZip is a module zip with the tiny set in the GoMNIST layout.
func gomnistZip(t *testing.T) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	prefix := "github.com/petar/!go!m!n!i!s!t@" + gomnistVersion + "/"
	add := func(name string, data []byte) {
		w, err := zw.Create(prefix + name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	add("LICENSE", []byte("test\n"))
	for name, data := range tinyMNIST(t) {
		add("data/"+name, data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// proxyServer serves body at the GoMNIST zip's proxy URL on loopback and
// counts the requests.
func proxyServer(t *testing.T, body []byte) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	want := "/github.com/petar/!go!m!n!i!s!t/@v/" + gomnistVersion + ".zip"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != want {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestLocateMNISTRefusesTamperedZip(t *testing.T) {
	srv, hits := proxyServer(t, gomnistZip(t))
	o := noNetwork(t)
	o.GOPROXY = srv.URL
	_, err := LocateMNIST(context.Background(), o)
	if !errors.Is(err, ErrMNISTHash) || !errors.Is(err, ErrNotInstalled) || hits.Load() != 1 {
		t.Fatalf("err = %v (hits %d), want ErrMNISTHash", err, hits.Load())
	}
	if _, err := os.Stat(o.CacheDir); !os.IsNotExist(err) {
		t.Errorf("cache dir %s written from a zip that failed the hash check", o.CacheDir)
	}
	if entries, _ := os.ReadDir(filepath.Dir(o.CacheDir)); len(entries) != 0 {
		t.Errorf("leftovers beside the cache dir: %v", entries)
	}
}

func TestFetchMNISTExtractsVerifiedZip(t *testing.T) {
	z := gomnistZip(t)
	zipPath := filepath.Join(t.TempDir(), "m.zip")
	if err := os.WriteFile(zipPath, z, 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := dirhash.HashZip(zipPath, dirhash.Hash1)
	if err != nil {
		t.Fatal(err)
	}
	srv, hits := proxyServer(t, z)
	cache := filepath.Join(t.TempDir(), "mfn", "mnist")
	if err := fetchMNIST(context.Background(), nil, srv.URL, cache, h); err != nil {
		t.Fatal(err)
	}
	train, test, err := LoadMNIST(cache)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 3 || test.Len() != 2 || hits.Load() != 1 {
		t.Fatalf("train %d, test %d, hits %d", train.Len(), test.Len(), hits.Load())
	}
	// Once cached, LocateMNIST uses the cache without asking the proxy.
	o := MNISTOptions{CacheDir: cache, ModCache: t.TempDir(), GoCommand: "-", GOPROXY: srv.URL}
	if got, err := LocateMNIST(context.Background(), o); err != nil || got != cache || hits.Load() != 1 {
		t.Fatalf("LocateMNIST = %q, %v (hits %d)", got, err, hits.Load())
	}
	// A proxy list: the first entry fails, the second serves.
	cache2 := filepath.Join(t.TempDir(), "mnist")
	if err := fetchMNIST(context.Background(), nil, srv.URL+"/nothing-here", cache2, h); err == nil {
		t.Fatal("fetch from a 404 proxy succeeded")
	}
	if got := proxies("off"); len(got) != 0 {
		t.Errorf("proxies(off) = %v", got)
	}
	if got := proxies("https://a.example,direct|https://b.example/,off,https://c.example"); strings.Join(got, " ") != "https://a.example https://b.example" {
		t.Errorf("proxies = %v", got)
	}
}

func TestLocateMNISTModuleCache(t *testing.T) {
	mc := t.TempDir()
	data := filepath.Join(mc, "github.com", "petar", "!go!m!n!i!s!t@"+gomnistVersion, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range tinyMNIST(t) {
		if err := os.WriteFile(filepath.Join(data, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := noNetwork(t)
	o.ModCache = mc
	if got, err := LocateMNIST(context.Background(), o); err != nil || got != data {
		t.Fatalf("LocateMNIST = %q, %v; want %q", got, err, data)
	}
}
