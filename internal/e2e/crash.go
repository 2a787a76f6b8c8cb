package e2e

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mfn/mfn/coordinator"
)

// crashableLayer is a Raft stream layer (the coordinator's mutual-TLS
// layer underneath) that can be cut off at once: crash closes every
// connection it accepted or dialed and refuses new ones. A member whose
// layer crashed can no longer reach its peers, so closing it afterwards
// cannot hand its leadership over: to the others it simply vanished, as a
// killed process would.
type crashableLayer struct {
	*coordinator.TLSStreamLayer

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	crashed bool
}

var errCrashed = errors.New("e2e: member crashed")

func newCrashableLayer(l *coordinator.TLSStreamLayer) *crashableLayer {
	return &crashableLayer{TLSStreamLayer: l, conns: map[net.Conn]struct{}{}}
}

func (c *crashableLayer) track(conn net.Conn) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed {
		conn.Close()
		return nil, errCrashed
	}
	c.conns[conn] = struct{}{}
	return conn, nil
}

// Accept implements raft.StreamLayer.
func (c *crashableLayer) Accept() (net.Conn, error) {
	conn, err := c.TLSStreamLayer.Accept()
	if err != nil {
		return nil, err
	}
	return c.track(conn)
}

// Dial implements raft.StreamLayer.
func (c *crashableLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c.mu.Lock()
	crashed := c.crashed
	c.mu.Unlock()
	if crashed {
		return nil, errCrashed
	}
	conn, err := c.TLSStreamLayer.Dial(address, timeout)
	if err != nil {
		return nil, err
	}
	return c.track(conn)
}

// crash cuts every connection and the listener.
func (c *crashableLayer) crash() {
	c.mu.Lock()
	c.crashed = true
	conns := c.conns
	c.conns = map[net.Conn]struct{}{}
	c.mu.Unlock()
	for conn := range conns {
		conn.Close()
	}
	c.TLSStreamLayer.Close()
}
