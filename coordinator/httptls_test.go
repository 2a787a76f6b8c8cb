package coordinator

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSelfSignedHTTPCert(t *testing.T) {
	t.Parallel()
	key := testKey(t, 1)
	a, err := SelfSignedHTTPCert(key, []string{"coord-1.example", "10.0.0.7", "0.0.0.0", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := SelfSignedHTTPCert(key, []string{"coord-1.example", "10.0.0.7", "0.0.0.0", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Certificate[0], b.Certificate[0]) {
		t.Fatal("the same key and hosts gave different certificates")
	}
	leaf := a.Leaf
	if got := strings.Join(leaf.DNSNames, ","); got != "coord-1.example,localhost" {
		t.Fatalf("DNS names %q", got)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if got := strings.Join(ips, ","); got != "10.0.0.7,127.0.0.1,::1" {
		t.Fatalf("IP addresses %q (the unspecified address must not be named)", got)
	}
	for _, host := range []string{"coord-1.example", "10.0.0.7", "127.0.0.1", "localhost"} {
		if err := leaf.VerifyHostname(host); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	other, err := SelfSignedHTTPCert(testKey(t, 2), []string{"coord-1.example"})
	if err != nil {
		t.Fatal(err)
	}
	if other.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Fatal("two keys gave the same serial")
	}
}

// TestHTTPClientTLS: members trust a self-signed certificate of a pinned
// key, or a chain to the configured roots for the dialled host, and
// nothing else.
func TestHTTPClientTLS(t *testing.T) {
	t.Parallel()
	key := testKey(t, 3)
	cert, err := SelfSignedHTTPCert(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, tls.VersionName(r.TLS.Version))
	}))
	srv.TLS = HTTPServerTLS(cert)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	asCA := x509.NewCertPool()
	asCA.AddCert(cert.Leaf)

	get := func(tr http.RoundTripper, url string) error {
		resp, err := (&http.Client{Transport: tr}).Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return nil
	}
	for _, tc := range []struct {
		name  string
		peers *PeerKeys
		roots *x509.CertPool
		url   string
		ok    bool
	}{
		{"pinned key", NewPeerKeys(key.Public().(ed25519.PublicKey)), nil, srv.URL, true},
		{"pinned key, any host name", NewPeerKeys(key.Public().(ed25519.PublicKey)), nil, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1), true},
		{"other key pinned", NewPeerKeys(testKey(t, 4).Public().(ed25519.PublicKey)), nil, srv.URL, false},
		{"certificate as CA, its host", NewPeerKeys(), asCA, srv.URL, true},
		{"no trust", NewPeerKeys(), x509.NewCertPool(), srv.URL, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := get(HTTPTransport(tc.peers, tc.roots), tc.url)
			if tc.ok && err != nil {
				t.Fatal(err)
			}
			if !tc.ok && (err == nil || !errors.Is(err, ErrUntrustedServer)) {
				t.Fatalf("got %v, want ErrUntrustedServer", err)
			}
		})
	}
	t.Run("TLS 1.2 refused", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{MaxVersion: tls.VersionTLS12, InsecureSkipVerify: true}}
		if err := get(tr, srv.URL); err == nil {
			t.Fatal("a TLS 1.2 client was served")
		}
	})
}
