package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/sim"
)

// NumRegimes is the number of classes of the MFN regime task.
var NumRegimes = len(learn.MFNRegimes)

// Reference sizes of the regime task. Every site and every evaluator of a
// federation must simulate with the same grid and step count, and
// standardise features with the same statistics, or their models would
// not speak the same language.
const (
	refGridSize = 32
	refSteps    = 48
	// refPerRegime simulations of each regime, from refSeed, give the
	// task's reference feature statistics (mean and standard deviation
	// of the compressed features). 24 per regime keeps the estimate
	// within a few percent and costs well under a second.
	refPerRegime = 24
	refSeed      = 0x6d666e2d726566 // "mfn-ref"
	// simChunk is how many simulations run between progress reports. The
	// data do not depend on it: parameters are drawn in label order.
	simChunk = 16
)

// ErrDataCache is wrapped by errors about a dataset cache file that cannot
// be used (corrupt, of another version or of another configuration). The
// node then simulates its data again.
var ErrDataCache = errors.New("node: dataset cache unusable")

func (d DataConfig) grid() (int, int) {
	g, s := d.GridSize, d.Steps
	if g == 0 {
		g = refGridSize
	}
	if s == 0 {
		s = refSteps
	}
	return g, s
}

// ReferenceStandardizer returns the regime task's shared feature
// statistics for the given simulation size: those of refPerRegime
// simulations of every regime drawn from a fixed seed. Every site and
// evaluator computes the same values, so no statistics need to be
// exchanged, and no site's private data shape them.
func ReferenceStandardizer(ctx context.Context, gridSize, steps, workers int) (learn.Standardizer, error) {
	labels := make([]int, 0, refPerRegime*NumRegimes)
	for r := range NumRegimes {
		for range refPerRegime {
			labels = append(labels, r)
		}
	}
	d, err := learn.SimulateRegimes(ctx, learn.RegimeTaskConfig{GridSize: gridSize, Steps: steps, Workers: workers}, labels, newRand(refSeed, 0))
	if err != nil {
		return learn.Standardizer{}, err
	}
	return learn.FitStandardizer(d), nil
}

// SimulateSite simulates a site's local regime data: d.Samples runs whose
// regimes follow d.Proportions, drawn from d.Seed, standardised with the
// task's ReferenceStandardizer. progress (optional) is called after each
// chunk of simulations with the number done and the total (reference
// simulations included). The result depends only on d's task fields and
// seed, not on Workers or chunking.
func SimulateSite(ctx context.Context, d DataConfig, progress func(done, total int)) (*learn.Dataset, error) {
	if d.Task != TaskMFNRegime {
		return nil, fmt.Errorf("node: SimulateSite: task %q is not %s", d.Task, TaskMFNRegime)
	}
	props := d.Proportions
	if props == nil {
		props = make([]float64, NumRegimes)
		for i := range props {
			props[i] = 1
		}
	}
	rng := newRand(d.Seed, 0x5173) // "site"
	labels := drawLabels(props, d.Samples, rng)
	total := d.Samples + refPerRegime*NumRegimes
	report := func(done int) {
		if progress != nil {
			progress(done, total)
		}
	}
	report(0)
	g, s := d.grid()
	tcfg := learn.RegimeTaskConfig{GridSize: g, Steps: s, Workers: d.Workers, Observe: simObserver(ctx)}
	out := &learn.Dataset{Dim: sim.NumFeatures, Classes: NumRegimes}
	for lo := 0; lo < len(labels); lo += simChunk {
		hi := min(lo+simChunk, len(labels))
		part, err := learn.SimulateRegimes(ctx, tcfg, labels[lo:hi], rng)
		if err != nil {
			return nil, err
		}
		out.X = append(out.X, part.X...)
		out.Y = append(out.Y, part.Y...)
		report(hi)
	}
	std, err := ReferenceStandardizer(ctx, g, s, d.Workers)
	if err != nil {
		return nil, err
	}
	std.Apply(out)
	report(total)
	return out, nil
}

// RegimeTestSet simulates a balanced, standardised test set of the regime
// task (perRegime runs of each regime from seed), as an evaluator of the
// global model uses it.
func RegimeTestSet(ctx context.Context, gridSize, steps, perRegime int, seed uint64, workers int) (*learn.Dataset, error) {
	dc := DataConfig{GridSize: gridSize, Steps: steps}
	g, s := dc.grid()
	labels := make([]int, 0, perRegime*NumRegimes)
	for r := range NumRegimes {
		for range perRegime {
			labels = append(labels, r)
		}
	}
	cfg := learn.RegimeTaskConfig{GridSize: g, Steps: s, Workers: workers}
	d, err := learn.SimulateRegimes(ctx, cfg, labels, newRand(seed, 0x7e57)) // "test"
	if err != nil {
		return nil, err
	}
	std, err := ReferenceStandardizer(ctx, g, s, workers)
	if err != nil {
		return nil, err
	}
	std.Apply(d)
	return d, nil
}

// drawLabels draws n labels from the (unnormalised) proportions, as
// learn.MFNSiteData does.
func drawLabels(props []float64, n int, rng interface{ Float64() float64 }) []int {
	var total float64
	for _, p := range props {
		total += p
	}
	labels := make([]int, n)
	for i := range labels {
		u := rng.Float64() * total
		k := 0
		for k < len(props)-1 && u >= props[k] {
			u -= props[k]
			k++
		}
		labels[i] = k
	}
	return labels
}

// loadMNIST returns the node's MNIST partition.
func loadMNIST(ctx context.Context, d DataConfig) (*learn.Dataset, error) {
	dir := d.MNISTDir
	if dir == "" {
		var err error
		if dir, err = learn.MNISTDir(ctx); err != nil {
			return nil, err
		}
	}
	train, _, err := learn.LoadImages(dir, 0, 1)
	if err != nil {
		return nil, err
	}
	parts, err := learn.PartitionIID(train.Len(), d.Partitions, newRand(d.Seed, 0x9a27)) // "part"
	if err != nil {
		return nil, err
	}
	idx := parts[d.Partition]
	if d.Samples > 0 && d.Samples < len(idx) {
		idx = idx[:d.Samples]
	}
	return train.Subset(idx), nil
}

// splitHoldOut splits d into a training part and a held-out part holding
// the given fraction (at least one sample when fraction > 0 and d has two
// or more), in an order drawn from seed.
func splitHoldOut(d *learn.Dataset, fraction float64, seed uint64) (train, hold *learn.Dataset) {
	n := d.Len()
	if fraction <= 0 || n < 2 {
		return d, nil
	}
	k := min(max(1, int(math.Round(fraction*float64(n)))), n-1)
	perm := newRand(seed, 0x401d).Perm(n) // "hold"
	return d.Subset(perm[k:]), d.Subset(perm[:k])
}

// ---- the dataset cache ----

// The cache file, version 1, integers little-endian:
//
//	magic    "MFNL"
//	version  uint8 (= 1)
//	key      [32]byte SHA-256 of the data configuration (cacheKey)
//	dim      uint32
//	classes  uint32
//	n        uint64
//	X        n·dim float64
//	Y        n uint32
//	checksum [32]byte SHA-256 of every byte before it
const (
	cacheMagic   = "MFNL"
	cacheVersion = 1
	cacheFile    = "dataset-v1.bin"
	cacheHeader  = 4 + 1 + 32 + 4 + 4 + 8
	// maxCacheBytes bounds what is read back (MNIST's 60,000 images are
	// 376 MB as float64).
	maxCacheBytes = 1 << 30
)

// cacheKey identifies the data a configuration produces: a change of task,
// size, mix, simulation size, seed or partition invalidates the cache.
// Workers and HoldOut do not change the data.
func cacheKey(d DataConfig) [32]byte {
	g, s := d.grid()
	desc := fmt.Sprintf("task=%s samples=%d props=%v grid=%d steps=%d seed=%d ref=%d/%d/%d mnist=%d/%d",
		d.Task, d.Samples, d.Proportions, g, s, d.Seed, refPerRegime, refGridSize, uint64(refSeed), d.Partition, d.Partitions)
	return sha256.Sum256([]byte(desc))
}

func encodeCache(key [32]byte, d *learn.Dataset) []byte {
	n := d.Len()
	b := make([]byte, 0, cacheHeader+8*len(d.X)+4*n+32)
	b = append(b, cacheMagic...)
	b = append(b, cacheVersion)
	b = append(b, key[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(d.Dim))
	b = binary.LittleEndian.AppendUint32(b, uint32(d.Classes))
	b = binary.LittleEndian.AppendUint64(b, uint64(n))
	for _, v := range d.X {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	for _, y := range d.Y {
		b = binary.LittleEndian.AppendUint32(b, uint32(y))
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// decodeCache parses a cache file written for key. Every failure wraps
// ErrDataCache; it never panics on arbitrary bytes.
func decodeCache(b []byte, key [32]byte) (*learn.Dataset, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrDataCache, fmt.Sprintf(format, args...))
	}
	if len(b) < cacheHeader+32 {
		return nil, bad("%d bytes is too short", len(b))
	}
	body, sum := b[:len(b)-32], b[len(b)-32:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, bad("checksum mismatch")
	}
	if string(body[:4]) != cacheMagic {
		return nil, bad("bad magic")
	}
	if body[4] != cacheVersion {
		return nil, bad("version %d, want %d", body[4], cacheVersion)
	}
	if !bytes.Equal(body[5:37], key[:]) {
		return nil, bad("written for another data configuration")
	}
	dim := binary.LittleEndian.Uint32(body[37:])
	classes := binary.LittleEndian.Uint32(body[41:])
	n := binary.LittleEndian.Uint64(body[45:])
	if dim == 0 || dim > 1<<20 || classes < 2 || classes > 1<<16 || n > 1<<32 {
		return nil, bad("dim %d, classes %d, n %d out of range", dim, classes, n)
	}
	want := uint64(cacheHeader) + n*uint64(dim)*8 + n*4
	if uint64(len(body)) != want {
		return nil, bad("%d bytes, want %d for %d samples of dim %d", len(body), want, n, dim)
	}
	d := &learn.Dataset{Dim: int(dim), Classes: int(classes), X: make([]float64, n*uint64(dim)), Y: make([]int, n)}
	p := body[cacheHeader:]
	for i := range d.X {
		d.X[i] = math.Float64frombits(binary.LittleEndian.Uint64(p[8*i:]))
	}
	p = p[8*len(d.X):]
	for i := range d.Y {
		d.Y[i] = int(binary.LittleEndian.Uint32(p[4*i:]))
	}
	if err := d.Validate(); err != nil {
		return nil, bad("%v", err)
	}
	return d, nil
}

// loadData returns the node's whole local dataset: from the cache in
// stateDir when it was written for this configuration, otherwise
// simulated (or loaded) and then cached. fromCache reports which.
func loadData(ctx context.Context, d DataConfig, stateDir string, progress func(done, total int)) (data *learn.Dataset, fromCache bool, err error) {
	if d.File.Path != "" {
		// A site's own file is read where it is, never copied.
		l, err := LoadFile(ctx, d)
		if err != nil {
			return nil, false, err
		}
		return l.Data, false, nil
	}
	key := cacheKey(d)
	path := filepath.Join(stateDir, cacheFile)
	if fi, err := os.Stat(path); err == nil && fi.Size() <= maxCacheBytes {
		b, err := os.ReadFile(path)
		if err == nil {
			if data, err := decodeCache(b, key); err == nil {
				return data, true, nil
			}
		}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	switch d.Task {
	case TaskMFNRegime:
		data, err = SimulateSite(ctx, d, progress)
	case TaskMNIST:
		data, err = loadMNIST(ctx, d)
	default:
		err = fmt.Errorf("node: unknown task %q", d.Task)
	}
	if err != nil {
		return nil, false, err
	}
	if err := writeFileAtomic(path, encodeCache(key, data)); err != nil {
		return nil, false, err
	}
	return data, false, nil
}

// writeFileAtomic writes data to path so that a crash leaves either the old
// file or the complete new one: a temporary file in the same directory is
// written and synced, renamed over path, and the directory is synced.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("node: write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("node: sync %s: %w", dir, err)
		}
	}
	return nil
}

// LocalData returns a node's training and held-out splits exactly as an
// Agent with this data configuration builds them: from the cache in
// stateDir if it matches, otherwise simulated (or loaded) and cached
// there. An agent started later on stateDir finds its data ready.
func LocalData(ctx context.Context, d DataConfig, stateDir string, progress func(done, total int)) (train, hold *learn.Dataset, err error) {
	if err := d.Validate(); err != nil {
		return nil, nil, err
	}
	if d.HoldOut == 0 {
		d.HoldOut = 0.2
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, nil, err
	}
	data, _, err := loadData(ctx, d, stateDir, progress)
	if err != nil {
		return nil, nil, err
	}
	train, hold = splitHoldOut(data, d.HoldOut, d.Seed)
	return train, hold, nil
}
