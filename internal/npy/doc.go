// Package npy reads and writes NumPy's .npy array files, the format that
// numpy.save and numpy.load use, so that fields and histories pass between
// mfn and Python without conversion.
//
// # The format
//
// A .npy file is a fixed preamble, a text header and the raw array bytes:
//
//	"\x93NUMPY"  magic, 6 bytes
//	major, minor version bytes (1.0, 2.0 or 3.0)
//	header length: uint16 little-endian (1.0) or uint32 little-endian (2.0, 3.0)
//	header: a Python dict literal, padded with spaces and ending in '\n', e.g.
//	        {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
//	data: prod(shape) elements of the dtype named by descr
//
// The format is specified in NumPy's "NEP 1 — A simple file format for NumPy
// arrays" and in the numpy.lib.format module documentation. NumPy pads the
// header so that the data begins at a multiple of 64 bytes; Write does the
// same, byte for byte as numpy.save would for a C-ordered float64 array.
//
// # Reading untrusted files
//
// Read parses the header as a literal (it never evaluates anything), accepts
// only little-endian float64 ('<f8') and float32 ('<f4', widened to float64)
// data in C (row-major) order, and checks the declared size against a limit
// before reading any data, so a hostile header cannot make it allocate more
// than the caller allowed. Memory grows only as data actually arrives. Every
// failure is an error wrapping one of the sentinel errors below; Read never
// panics, whatever the bytes.
//
//	data, shape, err := npy.Read(f, 1<<30)
//	if errors.Is(err, npy.ErrTruncated) { ... }
//	if len(shape) != 2 { ... } // the rank is the caller's to check
//
// Values are returned as read: NaN and ±Inf pass through, and callers that
// cannot accept them must check.
package npy
