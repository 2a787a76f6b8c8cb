// Package bolt stands in for github.com/boltdb/bolt v1.3.1, which MFN never
// calls but which github.com/hashicorp/raft-boltdb/v2 imports for its
// one-shot MigrateToV2 function. boltdb/bolt was archived in 2018 and does
// not compile for linux/riscv64 (it lacks that architecture's size
// constants); its maintained successor go.etcd.io/bbolt reads and writes
// the same file format. The main module's go.mod replaces
// github.com/boltdb/bolt with this directory, so every architecture bbolt
// supports builds.
//
// Only the identifiers raft-boltdb/v2 uses are provided, as aliases of the
// bbolt ones: the behaviour is bbolt's.
package bolt

import (
	"os"

	bbolt "go.etcd.io/bbolt"
)

// DB, Tx, Bucket and Options are bbolt's types.
type (
	DB      = bbolt.DB
	Tx      = bbolt.Tx
	Bucket  = bbolt.Bucket
	Options = bbolt.Options
)

// Open opens the database at path with bbolt.Open.
func Open(path string, mode os.FileMode, options *Options) (*DB, error) {
	return bbolt.Open(path, mode, options)
}
