package testenv

import (
	"net"
	"testing"
)

// SilentEndpoint accepts connections on 127.0.0.1 and then neither reads
// nor answers: a frozen (SIGSTOPped) server, whose kernel still completes
// the handshake, or a proxy that stopped forwarding. It returns the
// endpoint's http:// URL; t.Cleanup closes the listener and every
// connection.
func SilentEndpoint(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}
