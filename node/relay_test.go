package node

import (
	"net"
	"sync"
	"testing"
)

// udpRelay forwards UDP datagrams between clients and a target address on
// loopback, so a test can make a QUIC server vanish the way a killed or
// frozen process does — its packets stop, nothing says goodbye — or stand
// a new server (a restarted process) behind the same address.
type udpRelay struct {
	t  testing.TB
	pc *net.UDPConn

	mu     sync.Mutex
	target *net.UDPAddr
	gen    int // flows of an older generation are dropped (their process is gone)
	dead   bool
	flows  map[string]*relayFlow
}

type relayFlow struct {
	up  *net.UDPConn
	gen int
}

func newUDPRelay(t testing.TB, target string) *udpRelay {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &udpRelay{t: t, pc: pc, flows: map[string]*relayFlow{}}
	r.retarget(target)
	t.Cleanup(r.close)
	go r.serve()
	return r
}

func (r *udpRelay) addr() string { return r.pc.LocalAddr().String() }

// kill drops every packet from now on, both ways.
func (r *udpRelay) kill() {
	r.mu.Lock()
	r.dead = true
	r.mu.Unlock()
}

// retarget sends new flows to target; the packets of existing flows are
// dropped from now on, as a restarted process knows none of them.
func (r *udpRelay) retarget(target string) {
	a, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.target, r.dead = a, false
	r.gen++
	r.mu.Unlock()
}

func (r *udpRelay) close() {
	r.pc.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.flows {
		f.up.Close()
	}
}

func (r *udpRelay) live(f *relayFlow) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.dead && f.gen == r.gen
}

func (r *udpRelay) serve() {
	buf := make([]byte, 65536)
	for {
		n, client, err := r.pc.ReadFromUDP(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		f, ok := r.flows[client.String()]
		if !ok || f.gen != r.gen {
			up, err := net.DialUDP("udp", nil, r.target)
			if err != nil {
				r.mu.Unlock()
				continue
			}
			f = &relayFlow{up: up, gen: r.gen}
			r.flows[client.String()] = f
			go r.back(f, client)
		}
		r.mu.Unlock()
		if r.live(f) {
			f.up.Write(buf[:n])
		}
	}
}

func (r *udpRelay) back(f *relayFlow, client *net.UDPAddr) {
	buf := make([]byte, 65536)
	for {
		n, err := f.up.Read(buf)
		if err != nil {
			return
		}
		if r.live(f) {
			r.pc.WriteToUDP(buf[:n], client)
		}
	}
}
