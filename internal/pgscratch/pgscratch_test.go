package pgscratch

import (
	"net"
	"strconv"
	"testing"
)

// TestFreePortOutsideTheEphemeralRange: the port is one a listener can bind, and lies below the
// kernel's ephemeral range, where no outgoing connection takes it first.
func TestFreePortOutsideTheEphemeralRange(t *testing.T) {
	first := ephemeralStart()
	if first <= 11000 {
		t.Skipf("the ephemeral range starts at %d: nothing below it to choose from", first)
	}
	seen := map[int]bool{}
	for range 20 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if port >= first {
			t.Fatalf("port %d is in the ephemeral range, which starts at %d", port, first)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("port %d: %v", port, err)
		}
		l.Close()
		seen[port] = true
	}
	if len(seen) < 2 {
		t.Errorf("20 calls chose %d port(s): not at random", len(seen))
	}
}
