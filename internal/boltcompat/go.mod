module github.com/boltdb/bolt

go 1.22

require go.etcd.io/bbolt v1.3.5
