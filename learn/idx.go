package learn

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrIDX is wrapped by every error about malformed IDX data.
var ErrIDX = errors.New("learn: malformed IDX data")

// MaxIDXBytes bounds the payload ReadIDX accepts (MNIST's training images
// are 47 MB), so that a hostile header cannot make it allocate without limit.
const MaxIDXBytes = 64 << 20

// IDX is the content of one IDX file: an unsigned-byte tensor with its
// dimensions (outermost first). Only element type 0x08 (unsigned byte), the
// one MNIST and Fashion-MNIST use, is supported.
type IDX struct {
	Dims []int
	Data []byte
}

// ReadIDX parses one IDX file, gzip-compressed or raw (detected from the
// gzip magic bytes). The format (LeCun's MNIST page): two zero bytes, the
// element type, the number of dimensions, then each dimension as a
// big-endian uint32, then the elements. It rejects a wrong magic, an
// unsupported type, zero or more than 8 dimensions, a zero dimension, a
// payload above MaxIDXBytes, truncated data and trailing bytes; every such
// error wraps ErrIDX. I/O errors are returned as they are.
func ReadIDX(r io.Reader) (*IDX, error) { return ReadIDXHead(r, 0) }

// ReadIDXHead is ReadIDX reading only the first maxItems entries along the
// first dimension (all of them when maxItems ≤ 0 or larger than the
// file's count); Dims[0] is reduced accordingly. When it stops early it
// does not read, nor check, the rest of the file.
func ReadIDXHead(r io.Reader, maxItems int) (*IDX, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(2)
	if err != nil {
		return nil, fmt.Errorf("%w: short header: %v", ErrIDX, err)
	}
	var src io.Reader = br
	if head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrIDX, err)
		}
		defer zr.Close()
		src = zr
	}
	var hdr [4]byte
	if _, err := io.ReadFull(src, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: short header: %v", ErrIDX, err)
	}
	if hdr[0] != 0 || hdr[1] != 0 {
		return nil, fmt.Errorf("%w: magic % x, want 00 00", ErrIDX, hdr[:2])
	}
	if hdr[2] != 0x08 {
		return nil, fmt.Errorf("%w: element type 0x%02x unsupported (want 0x08, unsigned byte)", ErrIDX, hdr[2])
	}
	nd := int(hdr[3])
	if nd < 1 || nd > 8 {
		return nil, fmt.Errorf("%w: %d dimensions (want 1..8)", ErrIDX, nd)
	}
	raw := make([]byte, 4*nd)
	if _, err := io.ReadFull(src, raw); err != nil {
		return nil, fmt.Errorf("%w: truncated dimensions: %v", ErrIDX, err)
	}
	dims := make([]int, nd)
	size := 1
	for i := range dims {
		v := binary.BigEndian.Uint32(raw[4*i:])
		if v == 0 {
			return nil, fmt.Errorf("%w: dimension %d is zero", ErrIDX, i)
		}
		if uint64(size)*uint64(v) > MaxIDXBytes {
			return nil, fmt.Errorf("%w: payload exceeds %d bytes", ErrIDX, MaxIDXBytes)
		}
		dims[i] = int(v)
		size *= int(v)
	}
	if maxItems > 0 && maxItems < dims[0] {
		size = size / dims[0] * maxItems
		dims[0] = maxItems
		data := make([]byte, size)
		if n, err := io.ReadFull(src, data); err != nil {
			return nil, fmt.Errorf("%w: truncated: %d of %d data bytes", ErrIDX, n, size)
		}
		return &IDX{Dims: dims, Data: data}, nil
	}
	data := make([]byte, size)
	if n, err := io.ReadFull(src, data); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: truncated: %d of %d data bytes", ErrIDX, n, size)
		}
		return nil, fmt.Errorf("%w: reading data: %v", ErrIDX, err)
	}
	var one [1]byte
	if _, err := io.ReadFull(src, one[:]); err == nil {
		return nil, fmt.Errorf("%w: trailing bytes after %d data bytes", ErrIDX, size)
	} else if !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: after data: %v", ErrIDX, err)
	}
	return &IDX{Dims: dims, Data: data}, nil
}

// ReadIDXFile opens and parses one IDX file (see ReadIDXHead for
// maxItems); the error names the file.
func ReadIDXFile(path string, maxItems int) (*IDX, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	x, err := ReadIDXHead(f, maxItems)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return x, nil
}

// ImageDataset combines an IDX image tensor (n×rows×cols) and an IDX label
// vector (n) into a Dataset with inputs scaled to [0, 1]. Errors wrap
// ErrIDX when the shapes disagree or a label is not below classes.
func ImageDataset(images, labels *IDX, classes int) (*Dataset, error) {
	if len(images.Dims) != 3 {
		return nil, fmt.Errorf("%w: images have %d dimensions, want 3", ErrIDX, len(images.Dims))
	}
	if len(labels.Dims) != 1 {
		return nil, fmt.Errorf("%w: labels have %d dimensions, want 1", ErrIDX, len(labels.Dims))
	}
	n := images.Dims[0]
	if labels.Dims[0] != n {
		return nil, fmt.Errorf("%w: %d images but %d labels", ErrIDX, n, labels.Dims[0])
	}
	dim := images.Dims[1] * images.Dims[2]
	d := &Dataset{X: make([]float64, n*dim), Y: make([]int, n), Dim: dim, Classes: classes}
	for i, b := range images.Data {
		d.X[i] = float64(b) / 255
	}
	for i, b := range labels.Data {
		if int(b) >= classes {
			return nil, fmt.Errorf("%w: label %d of sample %d not below %d", ErrIDX, b, i, classes)
		}
		d.Y[i] = int(b)
	}
	return d, nil
}

// mnistFiles are the four files of the MNIST distribution, in the order
// train images, train labels, test images, test labels.
var mnistFiles = [4]string{
	"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
	"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
}

// LoadMNIST reads MNIST (60,000 training and 10,000 test images of 28×28
// pixels, 10 classes) from dir, accepting each file gzip-compressed (name
// ending in .gz) or raw. Pixels are scaled to [0, 1]; standardise them
// with Standardize before training.
func LoadMNIST(dir string) (train, test *Dataset, err error) {
	return LoadImages(dir, 0, 0)
}

// FashionMNISTDir is where Debian's dataset-fashion-mnist package installs
// Fashion-MNIST.
const FashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// ErrNotInstalled reports that an optional dataset is not present.
var ErrNotInstalled = errors.New("learn: dataset not installed")

// LoadFashionMNIST reads Fashion-MNIST (same layout and file names as
// MNIST) from dir. When none of the files exists the error wraps
// ErrNotInstalled, so callers can skip the dataset.
func LoadFashionMNIST(dir string) (train, test *Dataset, err error) {
	return LoadImages(dir, 0, 0)
}

// LoadImages reads an MNIST-layout directory (MNIST or Fashion-MNIST),
// keeping only the first nTrain training and nTest test items (all when
// zero or negative), which is much faster for small experiments. Errors
// wrap ErrNotInstalled when a file is missing and ErrIDX when one is
// malformed.
func LoadImages(dir string, nTrain, nTest int) (train, test *Dataset, err error) {
	var x [4]*IDX
	limits := [4]int{nTrain, nTrain, nTest, nTest}
	for i, name := range mnistFiles {
		p, err := findIDX(dir, name)
		if err != nil {
			return nil, nil, err
		}
		if x[i], err = ReadIDXFile(p, limits[i]); err != nil {
			return nil, nil, err
		}
	}
	if train, err = ImageDataset(x[0], x[1], 10); err != nil {
		return nil, nil, fmt.Errorf("%s training split: %w", dir, err)
	}
	if test, err = ImageDataset(x[2], x[3], 10); err != nil {
		return nil, nil, fmt.Errorf("%s test split: %w", dir, err)
	}
	if train.Dim != test.Dim {
		return nil, nil, fmt.Errorf("%w: %s: train dim %d, test dim %d", ErrIDX, dir, train.Dim, test.Dim)
	}
	return train, test, nil
}

func findIDX(dir, name string) (string, error) {
	for _, cand := range []string{name + ".gz", name, strings.Replace(name, "-idx", ".idx", 1)} {
		p := filepath.Join(dir, cand)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %s(.gz) not found in %s", ErrNotInstalled, name, dir)
}
