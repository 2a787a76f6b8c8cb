package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// createOutputTemp creates a new temporary file ".BASE.tmp-RANDOM" in dir
// for an output that is renamed into place when complete. Unlike
// os.CreateTemp, whose files are 0600, it asks for mode 0666 and lets the
// kernel apply the process umask, so the finished output has the mode any
// other newly created file would have (0644 under the usual umask 022,
// 0600 under 077).
func createOutputTemp(dir, base string) (*os.File, error) {
	var b [8]byte
	for range 100 {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
		name := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(b[:]))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, &fs.PathError{Op: "createtemp", Path: filepath.Join(dir, "."+base+".tmp-*"), Err: fs.ErrExist}
}
