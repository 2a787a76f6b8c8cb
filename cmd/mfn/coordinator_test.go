package main

import (
	"net"
	"testing"
)

func TestAdvertisedAddress(t *testing.T) {
	t.Parallel()
	bound := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40123}
	for _, tc := range []struct {
		adv, bind string
		want      string
		wildcard  bool
	}{
		{"", "127.0.0.1:8080", "127.0.0.1:40123", false},
		{"", "127.0.0.1:0", "127.0.0.1:40123", false},
		{"", "coord-1.example:0", "coord-1.example:40123", false},
		{"", "[::1]:0", "[::1]:40123", false},
		{"", ":8080", "", true},
		{"", "0.0.0.0:8080", "", true},
		{"", "[::]:8080", "", true},
		{"coord-1.example:8443", "0.0.0.0:8080", "coord-1.example:8443", true},
	} {
		if got := wildcardHost(tc.bind); got != tc.wildcard {
			t.Errorf("wildcardHost(%q) = %v, want %v", tc.bind, got, tc.wildcard)
		}
		if got := advertised(tc.adv, tc.bind, bound); got != tc.want {
			t.Errorf("advertised(%q, %q) = %q, want %q", tc.adv, tc.bind, got, tc.want)
		}
	}
	for addr, ok := range map[string]bool{
		"coord-1.example:8443": true, "10.0.0.7:8080": true, "[fd00::7]:8080": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "10.0.0.7:0": false, "10.0.0.7": false,
	} {
		if err := checkAdvertise(addr); (err == nil) != ok {
			t.Errorf("checkAdvertise(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}
