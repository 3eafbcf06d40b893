package httpsec

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/tlstest"
)

// server is an HTTPS server on loopback.
type server struct {
	Listener net.Listener
	URL      string
}

// serve starts an HTTPS server with the daemon's TLS setup on loopback
// (httptest's would put its own certificate first).
func serve(t *testing.T, tc config.HTTPTLS, logs io.Writer) (*server, *Certificate) {
	t.Helper()
	cert, err := LoadCertificate(tc, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ServerConfig(tc, cert)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }),
		TLSConfig: cfg, ErrorLog: log.New(io.Discard, "", 0)}
	go hs.ServeTLS(l, "", "")
	t.Cleanup(func() { hs.Close() })
	return &server{l, "https://" + l.Addr().String()}, cert
}

// presented is the certificate the server presents to a new connection.
func presented(t *testing.T, addr string, conf *tls.Config) (string, error) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.Handshake(); err != nil {
		return "", err
	}
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

// A renewed certificate written over the same files is served from the
// next connection, without a restart; a pair that does not load leaves the
// previous one served, said once in the log.
func TestRenewedCertificateIsServedWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "test")
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := ca.Server(t, "first", time.Now().Add(48*time.Hour), certFile, keyFile)
	var logs bytes.Buffer
	srv, cert := serve(t, config.HTTPTLS{CertFile: certFile, KeyFile: keyFile}, &logs)
	addr := srv.Listener.Addr().String()
	conf := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	if cn, err := presented(t, addr, conf); err != nil || cn != "first" {
		t.Fatalf("first certificate: %q, %v", cn, err)
	}
	if !cert.NotAfter().Equal(first.Cert.NotAfter) {
		t.Errorf("NotAfter %v, want %v", cert.NotAfter(), first.Cert.NotAfter)
	}

	second := ca.Server(t, "second", time.Now().Add(90*24*time.Hour), certFile, keyFile)
	var cn string
	if err := pgtest.Poll(context.Background(), 10*time.Second, func() bool {
		cn, _ = presented(t, addr, conf)
		return cn == "second"
	}); err != nil {
		t.Fatalf("the renewed certificate is not served: still %q", cn)
	}
	if !cert.NotAfter().Equal(second.Cert.NotAfter) {
		t.Errorf("NotAfter %v, want the renewed %v", cert.NotAfter(), second.Cert.NotAfter)
	}
	if !strings.Contains(logs.String(), "TLS certificate re-read") {
		t.Errorf("the re-read is not logged:\n%s", logs.String())
	}

	// A key that does not match the certificate (a renewal half done):
	// the previous pair goes on being served, and it is said once.
	other := filepath.Join(dir, "other.key")
	ca.Server(t, "third", time.Now().Add(48*time.Hour), filepath.Join(dir, "other.crt"), other)
	b, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if cn, err := presented(t, addr, conf); err != nil || cn != "second" {
			t.Fatalf("during a broken renewal: %q, %v", cn, err)
		}
	}
	if n := strings.Count(logs.String(), "does not load"); n != 1 {
		t.Errorf("the broken pair is logged %d times, want once:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Error("key material in the log")
	}
	// Fixed: served.
	ca.Server(t, "fourth", time.Now().Add(48*time.Hour), certFile, keyFile)
	if err := pgtest.Poll(context.Background(), 10*time.Second, func() bool {
		cn, _ = presented(t, addr, conf)
		return cn == "fourth"
	}); err != nil {
		t.Fatalf("after the renewal was finished: still %q", cn)
	}
}

// With client_ca_file, a connection without a certificate of that CA is
// refused in the handshake.
func TestClientCertificateRequired(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "server")
	clients := tlstest.NewCA(t, dir, "clients")
	stranger := tlstest.NewCA(t, dir, "stranger")
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.Server(t, "pglmon", time.Now().Add(48*time.Hour), certFile, keyFile)
	srv, _ := serve(t, config.HTTPTLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: clients.File}, io.Discard)
	get := func(c *tls.Certificate) error {
		tc := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
		if c != nil {
			tc.Certificates = []tls.Certificate{*c}
		}
		cl := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
		resp, err := cl.Get(srv.URL)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	prom := clients.Client(t, "prometheus", filepath.Join(dir, "p.crt"), filepath.Join(dir, "p.key"))
	if err := get(&prom.TLS); err != nil {
		t.Errorf("a client of the CA: %v", err)
	}
	if err := get(nil); err == nil {
		t.Error("no client certificate: served")
	}
	other := stranger.Client(t, "prometheus", filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key"))
	if err := get(&other.TLS); err == nil {
		t.Error("a client certificate of another CA: served")
	}
}

// Files that are missing or do not hold a pair: the error names the field
// and the file.
func TestLoadErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "test")
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.Server(t, "pglmon", time.Now().Add(48*time.Hour), certFile, keyFile)
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct {
		tc   config.HTTPTLS
		want []string
	}{
		{config.HTTPTLS{CertFile: filepath.Join(dir, "missing.crt"), KeyFile: keyFile}, []string{"http.tls.cert_file", "missing.crt"}},
		{config.HTTPTLS{CertFile: certFile, KeyFile: filepath.Join(dir, "missing.key")}, []string{"http.tls.key_file", "missing.key"}},
		{config.HTTPTLS{CertFile: junk, KeyFile: keyFile}, []string{"http.tls", "junk.pem"}},
		{config.HTTPTLS{CertFile: certFile, KeyFile: certFile}, []string{"http.tls", "tls.crt"}},
	} {
		_, err := LoadCertificate(c.tc, logger)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %v, want it to name %q", c.tc, err, w)
			}
		}
	}
	cert, err := LoadCertificate(config.HTTPTLS{CertFile: certFile, KeyFile: keyFile}, logger)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ServerConfig(config.HTTPTLS{ClientCAFile: junk}, cert); err == nil || !strings.Contains(err.Error(), "http.tls.client_ca_file") {
		t.Errorf("a client CA file without a certificate: %v", err)
	}
	// ${CREDENTIALS_DIRECTORY}, as systemd's LoadCredential= gives it.
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	if _, err := LoadCertificate(config.HTTPTLS{CertFile: "${CREDENTIALS_DIRECTORY}/tls.crt", KeyFile: "${CREDENTIALS_DIRECTORY}/tls.key"}, logger); err != nil {
		t.Errorf("files in the credentials directory: %v", err)
	}
}

func TestGuard(t *testing.T) {
	token := config.Secret("s3cret-token")
	h := Guard(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "served") }),
		func() config.Secret { return token }, "/healthz")
	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"/metrics", "", 401},
		{"/metrics", "Bearer wrong", 401},
		{"/metrics", "Bearer s3cret-token-longer", 401},
		{"/metrics", "Basic czNjcmV0LXRva2Vu", 401},
		{"/metrics", "Bearer s3cret-token", 200},
		{"/metrics", "bearer s3cret-token", 200},
		{"/healthz", "", 200},
	} {
		req := httptest.NewRequest("GET", c.path, nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s with %q: %d, want %d", c.path, c.auth, rec.Code, c.want)
		}
		if rec.Code == 401 && (rec.Header().Get("WWW-Authenticate") == "" || strings.Contains(rec.Body.String(), string(token))) {
			t.Errorf("%s with %q: refusal %q, headers %v", c.path, c.auth, rec.Body.String(), rec.Header())
		}
	}
	// No token configured: open.
	token = ""
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Errorf("without a token: %d", rec.Code)
	}
}
