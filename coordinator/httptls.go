package coordinator

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"slices"
	"time"
)

// HTTPS for the operator API. A member serves it with a certificate the
// operator provides (any key type, a CA's chain) or with one self-signed
// by its own Ed25519 identity (SelfSignedHTTPCert). Members reach each
// other's API (forwarded writes, joins) with HTTPClientTLS, which trusts
// both: a self-signed certificate of a cluster coordinator key, or a chain
// to the given roots valid for the dialled host.

// selfSignedEpoch and selfSignedEnd bound the validity of self-signed HTTP
// certificates. They are fixed, not derived from the clock, so that the
// certificate of a key and host list is the same bytes on every start
// (Ed25519 signatures are deterministic): a client that saved it as a CA
// file (curl --cacert, mfn ctl --ca) keeps working across restarts.
var (
	selfSignedEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	selfSignedEnd   = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// SelfSignedHTTPCert returns a TLS server certificate for key, self-signed,
// naming hosts (DNS names or IP addresses; "localhost", 127.0.0.1 and ::1
// are always added) so that clients verifying it as a CA certificate
// accept it for those hosts. The same key and hosts give the same
// certificate bytes. Clients that pin the key (mfn ctl --pin) need no
// names at all.
func SelfSignedHTTPCert(key ed25519.PrivateKey, hosts []string) (tls.Certificate, error) {
	var dns []string
	var ips []net.IP
	for _, h := range append(slices.Clone(hosts), "localhost", "127.0.0.1", "::1") {
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if ip.IsUnspecified() || slices.ContainsFunc(ips, ip.Equal) {
				continue
			}
			ips = append(ips, ip)
		} else if !slices.Contains(dns, h) {
			dns = append(dns, h)
		}
	}
	pub := key.Public().(ed25519.PublicKey)
	// A serial derived from the key and the names: unique per certificate
	// content, stable across restarts.
	h := sha256.New()
	h.Write(pub)
	for _, d := range dns {
		fmt.Fprintf(h, "dns:%s\n", d)
	}
	for _, ip := range ips {
		fmt.Fprintf(h, "ip:%s\n", ip)
	}
	serial := new(big.Int).SetBytes(h.Sum(nil)[:15])
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mfn coordinator"},
		DNSNames:              dns,
		IPAddresses:           ips,
		NotBefore:             selfSignedEpoch,
		NotAfter:              selfSignedEnd,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, pub, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("coordinator: self-signed HTTP certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// HTTPServerTLS returns the TLS configuration of a member's HTTPS API:
// TLS 1.3 only, serving cert.
func HTTPServerTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
	}
}

// ErrUntrustedServer is returned (inside the TLS handshake error) when a
// member's HTTPS certificate is neither a self-signed certificate of a
// cluster coordinator key nor verified by the configured roots.
var ErrUntrustedServer = errors.New("coordinator: HTTPS certificate is neither a cluster coordinator key nor signed by a trusted CA")

// HTTPClientTLS returns the TLS configuration members use for each
// other's HTTPS API (forwarded requests, joins) when dialling serverName
// (the host of the address dialled, a DNS name or an IP address). A server
// is trusted if its certificate is self-signed by a key in peers (the
// cluster's coordinator keys, joined members included), or else if it
// chains to roots and is valid for serverName (nil roots means the
// system's). TLS 1.3 only. HTTPTransport dials with it.
func HTTPClientTLS(peers *PeerKeys, roots *x509.CertPool, serverName string) *tls.Config {
	pinned := pinnedVerifier(peers)
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: serverName,
		NextProtos: []string{"http/1.1"},
		// Chain verification is done in VerifyConnection, which accepts a
		// pinned key or a chain to roots; Go's own check could only do the
		// latter.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: no certificate", ErrUntrustedServer)
			}
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, c := range cs.PeerCertificates {
				raw[i] = c.Raw
			}
			if pinned(raw, nil) == nil {
				return nil
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots: roots, Intermediates: inter, DNSName: serverName,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				return fmt.Errorf("%w: %v", ErrUntrustedServer, err)
			}
			return nil
		},
	}
}

// HTTPTransport returns an http.Transport for the members' HTTPS API:
// every TLS connection is made with HTTPClientTLS(peers, roots, host of
// the dialled address). Plain http:// requests go through unchanged.
func HTTPTransport(peers *PeerKeys, roots *x509.CertPool) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		d := tls.Dialer{Config: HTTPClientTLS(peers, roots, host)}
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return guardConn(c, peers), nil // a removed member's kept-alive connection fails too
	}
	return t
}
