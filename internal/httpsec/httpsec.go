// Package httpsec secures the daemon's HTTP server: its TLS certificate,
// re-read from its files when they change (a renewed certificate needs no
// restart), the client certificates it may require, and the bearer token
// that guards what it serves.
package httpsec

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pglmon/pglmon/internal/config"
)

// Certificate serves a PEM certificate and key pair, read again when either
// file changes. A pair that does not load (a renewal half written, a key
// that does not match) leaves the previous one served and is logged once.
type Certificate struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]fileStamp // of the files cert was read from
	refused [2]fileStamp // the last pair that failed to load
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// LoadCertificate reads the pair named by t; its errors name the field and
// the file.
func LoadCertificate(t config.HTTPTLS, log *slog.Logger) (*Certificate, error) {
	c := &Certificate{certFile: config.ExpandPath(t.CertFile), keyFile: config.ExpandPath(t.KeyFile), log: log}
	st, cert, err := c.load()
	if err != nil {
		return nil, err
	}
	c.cert, c.stamp = cert, st
	return c, nil
}

func (c *Certificate) load() ([2]fileStamp, *tls.Certificate, error) {
	var st [2]fileStamp
	for i, f := range []struct{ field, path string }{{"http.tls.cert_file", c.certFile}, {"http.tls.key_file", c.keyFile}} {
		s, err := stamp(f.path)
		if err != nil {
			return st, nil, fmt.Errorf("%s: %w", f.field, err)
		}
		st[i] = s
	}
	certPEM, err := os.ReadFile(c.certFile)
	if err != nil {
		return st, nil, fmt.Errorf("http.tls.cert_file: %w", err)
	}
	keyPEM, err := os.ReadFile(c.keyFile)
	if err != nil {
		return st, nil, fmt.Errorf("http.tls.key_file: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// crypto/tls never quotes key material in its errors.
		return st, nil, fmt.Errorf("http.tls: cert_file %s and key_file %s: %w", c.certFile, c.keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return st, nil, fmt.Errorf("http.tls.cert_file %s: %w", c.certFile, err)
		}
	}
	return st, &cert, nil
}

// current returns the certificate to serve, reading the files again when
// they changed since it was read.
func (c *Certificate) current() *tls.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	var now [2]fileStamp
	for i, p := range []string{c.certFile, c.keyFile} {
		s, err := stamp(p)
		if err != nil {
			// Gone for a moment (a renewal replacing it): keep serving.
			return c.cert
		}
		now[i] = s
	}
	if now == c.stamp || now == c.refused {
		return c.cert
	}
	st, cert, err := c.load()
	if err != nil {
		c.refused = now
		c.log.Warn("the renewed TLS certificate does not load: serving the previous one until its files change again",
			"error", err.Error(), "not_after", c.cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
		return c.cert
	}
	c.cert, c.stamp, c.refused = cert, st, [2]fileStamp{}
	c.log.Info("TLS certificate re-read", "subject", cert.Leaf.Subject.String(),
		"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339), "file", c.certFile)
	return cert
}

// Leaf is the certificate served now.
func (c *Certificate) Leaf() *x509.Certificate { return c.current().Leaf }

// NotAfter is when the certificate served now expires.
func (c *Certificate) NotAfter() time.Time { return c.Leaf().NotAfter }

// ServerConfig is the TLS configuration of the daemon's server: this
// certificate, TLS 1.2 or later, and, with a client_ca_file, a client
// certificate signed by that CA required of every connection.
func ServerConfig(t config.HTTPTLS, c *Certificate) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.current(), nil },
	}
	if t.ClientCAFile != "" {
		path := config.ExpandPath(t.ClientCAFile)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("http.tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("http.tls.client_ca_file %s: no PEM certificate in it", path)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// BeyondLoopback reports whether a listen address (http.listen) can be
// reached from other hosts.
func BeyondLoopback(listen string) bool {
	host, _, _ := net.SplitHostPort(listen)
	ip := net.ParseIP(host)
	return host != "localhost" && (ip == nil || !ip.IsLoopback())
}

// Guard serves next, except that a request for a path not in open must
// carry "Authorization: Bearer <token>" while token returns one ("" turns
// the check off). A refusal is 401 and says nothing of the token.
func Guard(next http.Handler, token func() config.Secret, open ...string) http.Handler {
	free := map[string]bool{}
	for _, p := range open {
		free[p] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := token().Reveal()
		if want == "" || free[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		if err := checkBearer(r.Header.Get("Authorization"), want); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pglmon"`)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func checkBearer(header, want string) error {
	scheme, got, ok := strings.Cut(header, " ")
	if header == "" {
		return errors.New("this needs the bearer token (http.bearer_token): Authorization: Bearer <token>")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return errors.New("only a bearer token is accepted: Authorization: Bearer <token>")
	}
	// Compared as hashes in constant time: neither the length nor a prefix leaks.
	g, w := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256([]byte(want))
	if subtle.ConstantTimeCompare(g[:], w[:]) != 1 {
		return errors.New("wrong bearer token")
	}
	return nil
}
