package pgtest

import (
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

// Link models a network path between pglmon and a server: a bandwidth (bytes
// per second, each direction) and a one-way propagation delay. Benchmarks
// use it to show how a comparison behaves off loopback.
type Link struct {
	Name      string
	Bandwidth int64 // bytes per second; 0 means unlimited
	Delay     time.Duration
}

// NewLinkProxy forwards a loopback port to cluster c through link l, until
// the test ends. Point a DSN at Host:Port to use it.
func NewLinkProxy(t testing.TB, c *Cluster, l Link) (host string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveConns(t, ln, func(client net.Conn) {
		defer client.Close()
		server, err := net.Dial("tcp", net.JoinHostPort(c.Host, strconv.Itoa(c.Port)))
		if err != nil {
			return
		}
		defer server.Close()
		done := make(chan struct{}, 2)
		go func() { l.pipe(server, client); done <- struct{}{} }()
		go func() { l.pipe(client, server); done <- struct{}{} }()
		<-done
	})
	return "127.0.0.1", ln.Addr().(*net.TCPAddr).Port
}

type chunk struct {
	b   []byte
	due time.Time
}

// pipe copies src to dst: each chunk leaves after the link's delay, and the
// sender is paced so that no more than Bandwidth bytes per second go through.
func (l Link) pipe(dst io.Writer, src io.Reader) {
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		var next time.Time // when the link is free to serialise the next byte
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				now := time.Now()
				if next.Before(now) {
					next = now
				}
				if l.Bandwidth > 0 {
					next = next.Add(time.Duration(int64(n) * int64(time.Second) / l.Bandwidth))
				}
				q <- chunk{buf[:n], next.Add(l.Delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		if d := time.Until(c.due); d > 0 {
			time.Sleep(d) // the link's own timing: this is the model, not synchronisation
		}
		if _, err := dst.Write(c.b); err != nil {
			for range q {
			}
			return
		}
	}
}
