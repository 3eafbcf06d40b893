package pgtest

import (
	"context"
	"net"
	"sync"
)

// BlackHole is a TCP port that accepts connections and never answers: what
// a security group dropping packets, or a stale address, does to a
// subscription's connection. It is not tied to a test (the demo uses it).
type BlackHole struct {
	ln   net.Listener
	mu   sync.Mutex
	held []net.Conn
}

// NewBlackHole listens on addr ("127.0.0.1:0" for any free port).
func NewBlackHole(addr string) (*BlackHole, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	b := &BlackHole{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.held = append(b.held, c)
			b.mu.Unlock()
		}
	}()
	return b, nil
}

// Port is the port it listens on.
func (b *BlackHole) Port() int { return b.ln.Addr().(*net.TCPAddr).Port }

// Close stops listening and drops every connection it holds; safe to call twice.
func (b *BlackHole) Close() {
	b.ln.Close()
	b.mu.Lock()
	for _, c := range b.held {
		c.Close()
	}
	b.held = nil
	b.mu.Unlock()
}

// SubscriptionInterface is the pglogical interface (provider connection
// string) subscription sub connects through, as the subscriber's catalog says.
func (p *Pair) SubscriptionInterface(ctx context.Context, sub string) (string, error) {
	var iface string
	err := p.Subscriber.QueryRow(ctx, `SELECT i.if_name::text FROM pglogical.subscription s
		JOIN pglogical.node_interface i ON i.if_id = s.sub_origin_if WHERE s.sub_name = $1`, []any{&iface}, sub)
	return iface, err
}
