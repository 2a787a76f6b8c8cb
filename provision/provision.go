package provision

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mfn/mfn/crypto"
)

// ErrConflict is wrapped when a file of the output exists with other
// content or mode and Options.Force is not set.
var ErrConflict = errors.New("provision: existing files differ")

// ConflictError lists the files that differ (paths relative to the output
// folder, sorted). It wraps ErrConflict.
type ConflictError struct {
	Paths []string
}

func (e *ConflictError) Error() string {
	const show = 5
	list := e.Paths
	more := ""
	if len(list) > show {
		list, more = list[:show], fmt.Sprintf(" and %d more", len(e.Paths)-show)
	}
	return fmt.Sprintf("provision: %d existing files differ from what the project gives (%s%s); rerun with --force to replace them", len(e.Paths), strings.Join(list, ", "), more)
}

func (e *ConflictError) Unwrap() error { return ErrConflict }

// Options says where and how to write the kits.
type Options struct {
	// Out is the output folder. Required.
	Out string
	// Force replaces files whose content or mode differ; without it such
	// a file makes Provision write nothing and return a *ConflictError.
	Force bool
	// Rand is the source of the generated Ed25519 keys, API keys and log
	// key (age keys always come from the system). Nil means crypto/rand;
	// tests pass a seeded stream.
	Rand io.Reader
}

// Result says what Provision did, paths relative to Options.Out.
type Result struct {
	// Created files did not exist; Unchanged ones were equal.
	Created, Unchanged []string
	// Extended files only grew at their end (a list of sites or API keys
	// with a new participant), and manifests of kits written without
	// conflict: written without Options.Force.
	Extended []string
	// Replaced files differed and were rewritten under Options.Force.
	Replaced []string
}

// fileState is how a rendered file compares with the disk.
type fileState struct {
	kind int
	err  error
}

var (
	fileMissing  = fileState{kind: 1}
	fileSame     = fileState{kind: 2}
	fileExtended = fileState{kind: 3}
	fileDiffers  = fileState{kind: 4}
)

// compare tells how f compares with its file under out: a file whose new
// content starts with its whole old content, with the same mode, is
// extended; any other difference, a loosened mode included, differs.
func compare(out string, f File) fileState {
	full := filepath.Join(out, filepath.FromSlash(f.Path))
	st, err := os.Lstat(full)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fileMissing
	case err != nil:
		return fileState{err: fmt.Errorf("provision: %w", err)}
	case !st.Mode().IsRegular():
		return fileDiffers
	}
	old, err := readBounded(full)
	if err != nil {
		return fileDiffers
	}
	sameMode := uint32(st.Mode().Perm()) == f.Mode
	switch {
	case sameMode && bytes.Equal(old, f.Data):
		return fileSame
	case sameMode && len(old) > 0 && bytes.HasPrefix(f.Data, old):
		return fileExtended
	}
	return fileDiffers
}

func kitHasConflict(manifest string, conflictKits map[string]bool) bool {
	kit := path.Dir(manifest)
	for dir := range conflictKits {
		if dir == kit || strings.HasPrefix(dir, kit+"/") {
			return true
		}
	}
	return false
}

// Provision writes every kit of p into opt.Out: it reads the secrets made
// by earlier runs from opt.Out/.provision, makes the missing ones, renders
// every file and compares it with the disk. Identical files are left alone
// (so a re-run changes nothing), missing files are created, and differing
// ones are replaced only with opt.Force. Files are written atomically
// (temporary file, fsync, rename); secrets with mode 0600 in folders of
// mode 0700.
func Provision(p *Project, opt Options) (*Result, error) {
	if opt.Out == "" {
		return nil, errors.New("provision: no output folder")
	}
	if opt.Rand == nil {
		opt.Rand = rand.Reader
	}
	s, err := loadSecrets(opt.Out, opt.Rand)
	if err != nil {
		return nil, err
	}
	files, err := render(p, s)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	var conflicts, write []File
	var manifests []File
	conflictKits := map[string]bool{}
	for _, f := range files {
		if path.Base(f.Path) == ManifestFile {
			manifests = append(manifests, f)
			continue
		}
		switch st := compare(opt.Out, f); st {
		case fileMissing:
			write = append(write, f)
			res.Created = append(res.Created, f.Path)
		case fileSame:
			res.Unchanged = append(res.Unchanged, f.Path)
		case fileExtended:
			write = append(write, f)
			res.Extended = append(res.Extended, f.Path)
		case fileDiffers:
			conflicts = append(conflicts, f)
			conflictKits[path.Dir(f.Path)] = true
		default:
			return nil, st.err
		}
	}
	// A manifest follows its kit: rewritten whenever the kit's files are
	// written without conflict.
	for _, f := range manifests {
		switch st := compare(opt.Out, f); {
		case st == fileMissing:
			write = append(write, f)
			res.Created = append(res.Created, f.Path)
		case st == fileSame:
			res.Unchanged = append(res.Unchanged, f.Path)
		case st.err != nil:
			return nil, st.err
		case kitHasConflict(f.Path, conflictKits):
			conflicts = append(conflicts, f)
		default:
			write = append(write, f)
			res.Extended = append(res.Extended, f.Path)
		}
	}
	if len(conflicts) > 0 && !opt.Force {
		ce := &ConflictError{}
		for _, f := range conflicts {
			ce.Paths = append(ce.Paths, f.Path)
		}
		sort.Strings(ce.Paths)
		return nil, ce
	}
	for _, f := range conflicts {
		write = append(write, f)
		res.Replaced = append(res.Replaced, f.Path)
	}
	if err := s.save(); err != nil {
		return nil, err
	}
	for _, f := range write {
		full := filepath.Join(opt.Out, filepath.FromSlash(f.Path))
		if err := mkdirs(filepath.Dir(full)); err != nil {
			return nil, err
		}
		if err := writeFile(full, f.Data, fs.FileMode(f.Mode)); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// mkdirs creates dir and its missing parents with mode 0700:
// kits hold secrets, and whoever installs a kit sets its own modes.
func mkdirs(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	return nil
}

// writeFile replaces path atomically with data and mode.
func writeFile(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("provision: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("provision: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("provision: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// AddSite appends a [[sites]] entry for id (with publicKey, if not empty:
// the site's own key) to the project file at path, keeping the rest of the
// file as it is, and returns the new project. It refuses an id the project
// already has. The file is replaced atomically.
func AddSite(path, id, publicKey string) (*Project, error) {
	p, err := LoadProject(path)
	if err != nil {
		return nil, err
	}
	if p.site(id) != nil {
		return nil, fmt.Errorf("%w: site %q is already in %s", ErrProject, id, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(data)
	if len(data) > 0 && data[len(data)-1] != '\n' {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "\n[[sites]]\nid = %q\n", id)
	if publicKey != "" {
		fmt.Fprintf(&b, "public_key = %q\n", publicKey)
	}
	np, err := ParseProject(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := writeFile(path, b.Bytes(), st.Mode().Perm()); err != nil {
		return nil, err
	}
	return np, nil
}

// ErrKit is wrapped by every error about a kit folder that does not check.
var ErrKit = errors.New("provision: bad kit")

// maxKitFile bounds every kit file read by VerifyKit and ReadSiteKit.
const maxKitFile = 1 << 20

// VerifyKit checks the files of the kit in dir against its manifest. A
// file the manifest lists but which is absent is reported in missing
// (a site may hand over its public files only); a file whose digest
// differs is an error wrapping ErrKit.
func VerifyKit(dir string) (missing []string, err error) {
	man, err := readBounded(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKit, dir, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(man))
	n := 0
	for sc.Scan() {
		n++
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 || name == "" || strings.Contains(name, "..") || filepath.IsAbs(name) {
			return nil, fmt.Errorf("%w: %s: %s line %d is not \"<sha256>  <path>\"", ErrKit, dir, ManifestFile, n)
		}
		data, err := readBounded(filepath.Join(dir, filepath.FromSlash(name)))
		if errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, name)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrKit, dir, err)
		}
		got := sha256.Sum256(data)
		if hex.EncodeToString(got[:]) != strings.ToLower(sum) {
			return nil, fmt.Errorf("%w: %s: %s does not match %s", ErrKit, dir, name, ManifestFile)
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: %s: empty %s", ErrKit, dir, ManifestFile)
	}
	return missing, nil
}

// ReadSiteKit returns the node id and public key a site kit enrols: it
// verifies the kit's manifest (the private key may be absent) and reads
// enrolment.txt, which must agree with keys/signing.pub. Errors wrap
// ErrKit.
func ReadSiteKit(dir string) (id, publicKey string, err error) {
	missing, err := VerifyKit(dir)
	if err != nil {
		return "", "", err
	}
	for _, m := range missing {
		if m == EnrolmentFile || m == "keys/"+crypto.SigningPubFile {
			return "", "", fmt.Errorf("%w: %s: %s is missing", ErrKit, dir, m)
		}
	}
	line, err := readBounded(filepath.Join(dir, EnrolmentFile))
	if err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrKit, err)
	}
	f := strings.Fields(string(line))
	if len(f) != 2 || !idPattern.MatchString(f[0]) {
		return "", "", fmt.Errorf("%w: %s: %s must be one line \"<id> mfn-ed25519:<key>\"", ErrKit, dir, EnrolmentFile)
	}
	pub, err := crypto.LoadPublicIdentity(filepath.Join(dir, "keys"))
	if err != nil {
		return "", "", fmt.Errorf("%w: %s: %v", ErrKit, dir, err)
	}
	if crypto.FormatPublicKey(pub.SigningKey) != f[1] {
		return "", "", fmt.Errorf("%w: %s: %s and keys/%s name different keys", ErrKit, dir, EnrolmentFile, crypto.SigningPubFile)
	}
	return f[0], f[1], nil
}

func readBounded(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxKitFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKitFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxKitFile)
	}
	return data, nil
}
