package pgtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// AuthProxy stands in front of a trust-authenticated test cluster and asks
// every client for a cleartext password, as a server with password (or RDS
// IAM) authentication does. Check decides whether the password is accepted;
// a refused one gets SQLSTATE 28P01 like a real server's. Accepted clients
// are spliced through to the cluster. Passwords received are recorded.
type AuthProxy struct {
	Host string
	Port int

	mu        sync.Mutex
	check     func(user, password string) error
	passwords []string
}

// NewAuthProxy listens on a loopback port until the test ends.
func NewAuthProxy(t testing.TB, c *Cluster, check func(user, password string) error) *AuthProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &AuthProxy{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, check: check}
	serveConns(t, ln, func(conn net.Conn) { p.serve(conn, net.JoinHostPort(c.Host, strconv.Itoa(c.Port))) })
	return p
}

// PasswordIs is a check that accepts exactly pw.
func PasswordIs(pw string) func(user, password string) error {
	return func(_, got string) error {
		if got != pw {
			return errors.New("wrong password")
		}
		return nil
	}
}

// SetCheck replaces the password check (a rotated secret, say).
func (p *AuthProxy) SetCheck(check func(user, password string) error) {
	p.mu.Lock()
	p.check = check
	p.mu.Unlock()
}

// Passwords lists the passwords received, in order.
func (p *AuthProxy) Passwords() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.passwords...)
}

// DSN is a connection string to database db through the proxy, without a password.
func (p *AuthProxy) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d dbname=%s user=postgres sslmode=disable", p.Host, p.Port, db)
}

func (p *AuthProxy) serve(client net.Conn, upstream string) {
	defer client.Close()
	be := pgproto3.NewBackend(client, client)
	var startup *pgproto3.StartupMessage
	for startup == nil {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			if _, err := client.Write([]byte("N")); err != nil {
				return
			}
		case *pgproto3.StartupMessage:
			startup = m
		default:
			return
		}
	}
	be.Send(&pgproto3.AuthenticationCleartextPassword{})
	if be.Flush() != nil {
		return
	}
	if be.SetAuthType(pgproto3.AuthTypeCleartextPassword) != nil {
		return
	}
	msg, err := be.Receive()
	if err != nil {
		return
	}
	pw, ok := msg.(*pgproto3.PasswordMessage)
	if !ok {
		return
	}
	user := startup.Parameters["user"]
	p.mu.Lock()
	p.passwords = append(p.passwords, pw.Password)
	check := p.check
	p.mu.Unlock()
	if err := check(user, pw.Password); err != nil {
		be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: fmt.Sprintf("password authentication failed for user %q", user)})
		_ = be.Flush()
		return
	}
	server, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer server.Close()
	fe := pgproto3.NewFrontend(server, server)
	fe.Send(startup)
	if fe.Flush() != nil {
		return
	}
	// The cluster trusts the client: its AuthenticationOk and everything
	// after pass straight through.
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(server, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, server); done <- struct{}{} }()
	<-done
}

// serveConns accepts connections on ln and serves each in a goroutine until
// the test ends; then it closes the listener and every open connection
// (pglogical keeps its own connections open) and waits for the goroutines.
func serveConns(t testing.TB, ln net.Listener, serve func(net.Conn)) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open[conn] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(open, conn)
					mu.Unlock()
				}()
				serve(conn)
			})
		}
	})
}
