package coordinator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// raftALPN is the ALPN protocol of the Raft channel between coordinators;
// a client of another protocol fails the handshake.
const raftALPN = "mfn-raft/1"

// handshakeTimeout bounds a TLS handshake on the Raft port, so a silent
// or slow peer cannot hold a connection slot.
const handshakeTimeout = 10 * time.Second

// PeerKeys is the set of coordinator public keys the Raft transport
// accepts, safe for concurrent use. The cluster's static keys are added at
// start; members registered through the replicated state (joins) are
// added as their registration is applied.
type PeerKeys struct {
	mu   sync.RWMutex
	keys map[string]bool
}

// NewPeerKeys returns a set holding keys.
func NewPeerKeys(keys ...ed25519.PublicKey) *PeerKeys {
	p := &PeerKeys{keys: map[string]bool{}}
	for _, k := range keys {
		p.Add(k)
	}
	return p
}

// Add trusts key.
func (p *PeerKeys) Add(key ed25519.PublicKey) {
	if len(key) != ed25519.PublicKeySize {
		return
	}
	p.mu.Lock()
	p.keys[string(key)] = true
	p.mu.Unlock()
}

// Contains reports whether key is trusted.
func (p *PeerKeys) Contains(key ed25519.PublicKey) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.keys[string(key)]
}

// Len is the number of trusted keys.
func (p *PeerKeys) Len() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.keys)
}

// ErrUntrustedPeer is returned (inside the TLS handshake error) when the
// peer's certificate key is not one of the pinned coordinator keys.
var ErrUntrustedPeer = errors.New("coordinator: peer key is not a cluster coordinator key")

// SelfSignedCert returns a TLS certificate for key, self-signed, valid
// for ten years. Peers trust it by pinning its public key, not through
// a CA; the name and dates carry no meaning.
func SelfSignedCert(key ed25519.PrivateKey) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "mfn"},
		DNSNames:     []string{"mfn"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("coordinator: self-signed certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// pinnedVerifier checks that the peer presents exactly one certificate,
// self-signed by an Ed25519 key in keys.
func pinnedVerifier(keys *PeerKeys) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) != 1 {
			return fmt.Errorf("%w: %d certificates, want 1", ErrUntrustedPeer, len(raw))
		}
		cert, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return fmt.Errorf("%w: %v", ErrUntrustedPeer, err)
		}
		pub, ok := cert.PublicKey.(ed25519.PublicKey)
		if !ok {
			return fmt.Errorf("%w: not an Ed25519 key", ErrUntrustedPeer)
		}
		if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
			return fmt.Errorf("%w: certificate not self-signed by its key: %v", ErrUntrustedPeer, err)
		}
		if !keys.Contains(pub) {
			return fmt.Errorf("%w: %x", ErrUntrustedPeer, []byte(pub))
		}
		return nil
	}
}

// TLSStreamLayer is a raft.StreamLayer over TCP with mutual TLS 1.3:
// both ends present self-signed certificates of their Ed25519 identity
// and accept only peers whose key is in PeerKeys. There is no plaintext
// mode. Handshakes complete (with a deadline) before Accept returns a
// connection.
type TLSStreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	server    *tls.Config
	client    *tls.Config
	logger    *slog.Logger
	peers     *PeerKeys              // connections fail once their peer leaves it (guardConn)
	info      atomic.Pointer[[]byte] // this member's record, served on memberInfoALPN

	conns  chan net.Conn
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	closed error
}

// NewTLSStreamLayer listens on bind (host:port) and returns the layer.
// advertise is the address peers dial (nil means the listener's address;
// it must not be unspecified like 0.0.0.0). logger may be nil.
func NewTLSStreamLayer(bind string, advertise net.Addr, key ed25519.PrivateKey, peers *PeerKeys, logger *slog.Logger) (*TLSStreamLayer, error) {
	if logger == nil {
		logger = discardLogger
	}
	cert, err := SelfSignedCert(key)
	if err != nil {
		return nil, err
	}
	// Our own key is always trusted: a single-member cluster dials itself
	// for nothing, but a member must recognise its own advertised address.
	peers.Add(key.Public().(ed25519.PublicKey))
	verify := pinnedVerifier(peers)
	base := tls.Config{
		MinVersion:            tls.VersionTLS13,
		Certificates:          []tls.Certificate{cert},
		NextProtos:            []string{raftALPN},
		VerifyPeerCertificate: verify,
	}
	server := base.Clone()
	server.ClientAuth = tls.RequireAnyClientCert
	server.NextProtos = append(server.NextProtos, memberInfoALPN) // membership.go
	client := base.Clone()
	// Chain verification is replaced by key pinning in VerifyPeerCertificate,
	// which runs on every handshake whatever this flag says.
	client.InsecureSkipVerify = true
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("coordinator: raft listen %s: %w", bind, err)
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	if tcp, ok := advertise.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("coordinator: raft advertise address %v is unspecified; give a routable address", advertise)
	}
	s := &TLSStreamLayer{ln: ln, advertise: advertise, server: server, client: client, logger: logger, peers: peers,
		conns: make(chan net.Conn), done: make(chan struct{})}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

func (s *TLSStreamLayer) acceptLoop() {
	defer s.wg.Done()
	for {
		raw, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.logger.Warn("raft accept", errAttr(err))
			select {
			case <-s.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		s.wg.Add(1)
		go s.handshake(raw)
	}
}

func (s *TLSStreamLayer) handshake(raw net.Conn) {
	defer s.wg.Done()
	conn := tls.Server(raw, s.server)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := conn.HandshakeContext(ctx); err != nil {
		s.logger.Warn("raft tls handshake rejected", slog.String("remote", raw.RemoteAddr().String()), errAttr(err))
		raw.Close()
		return
	}
	if conn.ConnectionState().NegotiatedProtocol == memberInfoALPN {
		s.serveMemberInfo(conn) // membership.go
		return
	}
	select {
	case s.conns <- guardConn(conn, s.peers):
	case <-s.done:
		conn.Close()
	}
}

// Accept returns the next authenticated connection.
func (s *TLSStreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

// Close stops listening; connections already returned stay open.
func (s *TLSStreamLayer) Close() error {
	s.once.Do(func() {
		close(s.done)
		s.closed = s.ln.Close()
	})
	s.wg.Wait()
	return s.closed
}

// Addr is the advertised address.
func (s *TLSStreamLayer) Addr() net.Addr { return s.advertise }

// Dial connects to a coordinator and completes the mutual TLS handshake.
func (s *TLSStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: s.client}
	c, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("coordinator: raft dial %s: %w", address, err)
	}
	return guardConn(c, s.peers), nil
}

var _ raft.StreamLayer = (*TLSStreamLayer)(nil)

// NewTLSTransport returns raft's network transport over a TLS stream
// layer. logger may be nil.
func NewTLSTransport(layer *TLSStreamLayer, logger *slog.Logger) *raft.NetworkTransport {
	if logger == nil {
		logger = discardLogger
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  newHclog(logger, "raft-net", hclog.Warn),
	})
}

// PublicKeyOf returns the Ed25519 key of a TLS peer certificate chain's
// leaf, or nil.
func PublicKeyOf(state tls.ConnectionState) ed25519.PublicKey {
	if len(state.PeerCertificates) == 0 {
		return nil
	}
	if k, ok := state.PeerCertificates[0].PublicKey.(ed25519.PublicKey); ok {
		return bytes.Clone(k)
	}
	return nil
}
