package protocol

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// ALPN is the TLS application protocol of MFN over QUIC.
const ALPN = "mfn/1"

// Peer-authentication errors, returned by the TLS handshake (wrapped).
var (
	// ErrKeyNotPinned: the server's key is not one of the pinned cluster keys.
	ErrKeyNotPinned = errors.New("protocol: peer key is not pinned")
	// ErrBadPeerCertificate: the peer sent no certificate, more than one, or
	// one that is not a self-signed Ed25519 certificate.
	ErrBadPeerCertificate = errors.New("protocol: bad peer certificate")
)

// Identity is a TLS identity derived from an Ed25519 key: a self-signed
// X.509 certificate whose subject key is that key. Peers authenticate each
// other by the key alone (pinning), so the certificate's names and validity
// carry no meaning; it is deterministic for a given key.
type Identity struct {
	key  ed25519.PrivateKey
	cert tls.Certificate
}

// NewIdentity builds the Identity of key. It fails only if key is not a
// valid Ed25519 private key.
func NewIdentity(key ed25519.PrivateKey) (Identity, error) {
	if len(key) != ed25519.PrivateKeySize {
		return Identity{}, fmt.Errorf("protocol: identity: Ed25519 private key must be %d bytes, got %d", ed25519.PrivateKeySize, len(key))
	}
	pub := key.Public().(ed25519.PublicKey)
	sum := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		// A positive serial derived from the key keeps the certificate
		// deterministic; RFC 5280 allows up to 20 octets.
		SerialNumber: new(big.Int).SetBytes(sum[:16]),
		Subject:      pkix.Name{CommonName: fmt.Sprintf("mfn %x", pub[:8])},
		NotBefore:    time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		// RFC 5280 §4.1.2.5: 99991231235959Z means "no well-defined
		// expiration date". Keys are revoked by enrollment, not by expiry.
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	// Ed25519 signing is deterministic and draws no randomness.
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, pub, key)
	if err != nil {
		return Identity{}, fmt.Errorf("protocol: identity: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return Identity{}, fmt.Errorf("protocol: identity: %w", err)
	}
	return Identity{
		key:  key,
		cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
	}, nil
}

// PublicKey returns the identity's Ed25519 public key.
func (id Identity) PublicKey() ed25519.PublicKey {
	if id.key == nil {
		return nil
	}
	return id.key.Public().(ed25519.PublicKey)
}

// Certificate returns the self-signed TLS certificate.
func (id Identity) Certificate() tls.Certificate { return id.cert }

// ServerConfig returns the TLS configuration of a coordinator: TLS 1.3 only,
// ALPN "mfn/1", and a client certificate required. The client's key is
// accepted only if verifyClient returns nil (the coordinator checks
// enrollment and revocation there); its error aborts the handshake.
// verifyClient must not be nil and must be safe for concurrent use.
func ServerConfig(id Identity, verifyClient func(pub ed25519.PublicKey) error) *tls.Config {
	if verifyClient == nil {
		panic("protocol: ServerConfig: nil verifyClient")
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		NextProtos:   []string{ALPN},
		Certificates: []tls.Certificate{id.cert},
		// RequireAnyClientCert makes a certificate mandatory but skips chain
		// validation, which VerifyPeerCertificate replaces by the key check.
		// TLS 1.3's CertificateVerify already proves possession of the key.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			pub, err := peerKeyFromRaw(raw)
			if err != nil {
				return err
			}
			if err := verifyClient(pub); err != nil {
				return fmt.Errorf("protocol: client key %x rejected: %w", pub[:8], err)
			}
			return nil
		},
		// No resumption: a resumed TLS 1.3 session skips the certificate
		// exchange, so every connection must run the callback afresh for
		// a revocation to take effect.
		SessionTicketsDisabled: true,
	}
}

// ClientConfig returns the TLS configuration of a node: TLS 1.3 only, ALPN
// "mfn/1", presenting id's certificate, and accepting the server only if its
// certificate key is one of pinned (the cluster's coordinator keys). The
// pinned slice is copied. With no pinned key every server is refused.
func ClientConfig(id Identity, pinned []ed25519.PublicKey) *tls.Config {
	pins := make([]ed25519.PublicKey, len(pinned))
	for i, p := range pinned {
		pins[i] = bytes.Clone(p)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		NextProtos:   []string{ALPN},
		Certificates: []tls.Certificate{id.cert},
		// Chain and name validation do not apply: coordinators have
		// self-signed certificates and are identified by key alone.
		// InsecureSkipVerify turns off only that validation; the
		// VerifyPeerCertificate callback below still runs on every
		// handshake and refuses any key that is not pinned, so there is no
		// unauthenticated path.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			pub, err := peerKeyFromRaw(raw)
			if err != nil {
				return err
			}
			return checkPinned(pub, pins)
		},
		SessionTicketsDisabled: true,
	}
}

func checkPinned(pub ed25519.PublicKey, pins []ed25519.PublicKey) error {
	for _, p := range pins {
		if pub.Equal(p) {
			return nil
		}
	}
	return fmt.Errorf("%w: %x", ErrKeyNotPinned, pub)
}

// peerKeyFromRaw extracts the Ed25519 key of a single self-signed
// certificate.
func peerKeyFromRaw(raw [][]byte) (ed25519.PublicKey, error) {
	if len(raw) != 1 {
		return nil, fmt.Errorf("%w: %d certificates, want 1", ErrBadPeerCertificate, len(raw))
	}
	cert, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPeerCertificate, err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: key type %T, want Ed25519", ErrBadPeerCertificate, cert.PublicKey)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return nil, fmt.Errorf("%w: not self-signed: %v", ErrBadPeerCertificate, err)
	}
	return pub, nil
}

// peerKeyFromState returns the verified peer key of a completed handshake.
func peerKeyFromState(cs tls.ConnectionState) (ed25519.PublicKey, error) {
	if len(cs.PeerCertificates) != 1 {
		return nil, fmt.Errorf("%w: %d certificates", ErrBadPeerCertificate, len(cs.PeerCertificates))
	}
	pub, ok := cs.PeerCertificates[0].PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, ErrBadPeerCertificate
	}
	return pub, nil
}
