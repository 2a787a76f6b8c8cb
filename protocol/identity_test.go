package protocol

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"
)

func TestIdentityDeterministic(t *testing.T) {
	a, b := testIdentity(t, 3), testIdentity(t, 3)
	if !bytes.Equal(a.Certificate().Certificate[0], b.Certificate().Certificate[0]) {
		t.Fatal("same key gave different certificates")
	}
	if !a.PublicKey().Equal(testKey(3).Public()) {
		t.Fatal("PublicKey differs from the key's")
	}
	pub, err := peerKeyFromRaw(a.Certificate().Certificate)
	if err != nil || !pub.Equal(a.PublicKey()) {
		t.Fatalf("certificate key: %x, %v", pub, err)
	}
	if _, err := NewIdentity(ed25519.PrivateKey{1, 2, 3}); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestTLSConfigs(t *testing.T) {
	id := testIdentity(t, 1)
	for _, c := range []*tls.Config{ServerConfig(id, func(ed25519.PublicKey) error { return nil }), ClientConfig(id, nil)} {
		if c.MinVersion != tls.VersionTLS13 || c.MaxVersion != tls.VersionTLS13 {
			t.Fatal("not TLS 1.3 only")
		}
		if len(c.NextProtos) != 1 || c.NextProtos[0] != ALPN {
			t.Fatalf("ALPN %v", c.NextProtos)
		}
		if c.VerifyPeerCertificate == nil {
			t.Fatal("no peer verification")
		}
	}
	if ServerConfig(id, func(ed25519.PublicKey) error { return nil }).ClientAuth != tls.RequireAnyClientCert {
		t.Fatal("server does not require a client certificate")
	}
}

func TestPeerCertificateChecks(t *testing.T) {
	id := testIdentity(t, 1)
	pinned := ClientConfig(testIdentity(t, 2), []ed25519.PublicKey{id.PublicKey()})
	own := id.Certificate().Certificate
	if err := pinned.VerifyPeerCertificate(own, nil); err != nil {
		t.Fatalf("pinned key refused: %v", err)
	}
	if err := pinned.VerifyPeerCertificate(testIdentity(t, 5).Certificate().Certificate, nil); !errors.Is(err, ErrKeyNotPinned) {
		t.Fatalf("unpinned key: %v", err)
	}

	// An ECDSA certificate, two certificates, garbage, and a certificate
	// whose self-signature is broken are refused before any key check.
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.NewChaCha8([32]byte{1}))
	if err == nil {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
			NotBefore: time.Unix(0, 0), NotAfter: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
		der, err := x509.CreateCertificate(rand.NewChaCha8([32]byte{2}), tmpl, tmpl, &ec.PublicKey, ec)
		if err != nil {
			t.Fatal(err)
		}
		if err := pinned.VerifyPeerCertificate([][]byte{der}, nil); !errors.Is(err, ErrBadPeerCertificate) {
			t.Fatalf("ECDSA certificate: %v", err)
		}
	}
	broken := bytes.Clone(own[0])
	broken[len(broken)-1] ^= 1 // inside the signature
	for name, raw := range map[string][][]byte{
		"two":     {own[0], own[0]},
		"none":    nil,
		"garbage": {[]byte("not a certificate")},
		"broken":  {broken},
	} {
		if err := pinned.VerifyPeerCertificate(raw, nil); !errors.Is(err, ErrBadPeerCertificate) {
			t.Errorf("%s: %v", name, err)
		}
	}

	var seen ed25519.PublicKey
	srv := ServerConfig(id, func(pub ed25519.PublicKey) error { seen = pub; return errors.New("revoked") })
	err = srv.VerifyPeerCertificate(testIdentity(t, 2).Certificate().Certificate, nil)
	if err == nil || !seen.Equal(testIdentity(t, 2).PublicKey()) {
		t.Fatalf("server callback: %v (saw %x)", err, seen)
	}
}
