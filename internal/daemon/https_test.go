package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/tlstest"
)

// httpsClient reaches the daemon over HTTPS, trusting ca, sending token.
type httpsClient struct {
	addr  string
	hc    *http.Client
	token string
}

func (c *httpsClient) get(t *testing.T, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "https://"+c.addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The daemon over HTTPS with a bearer token, as a Prometheus outside the
// host scrapes it: the token guards /metrics and /api/v1/status, health
// checks stay open, a rotated token takes effect at a reload, a renewed
// certificate without one, and neither token nor key reaches the log.
func TestDaemonServesHTTPSWithBearerToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "pglmon-test")
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := ca.Server(t, "pglmon", time.Now().Add(30*24*time.Hour), certFile, keyFile)
	tokenFile := filepath.Join(dir, "http-token")
	const token1, token2 = "first-token-0f9a1c", "second-token-77d2e4"
	if err := os.WriteFile(tokenFile, []byte(token1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := strings.Replace(pairConfig(p, filepath.Join(dir, "a.jsonl"), policyOff()), `  listen: "127.0.0.1:0"`,
		fmt.Sprintf("  listen: \"127.0.0.1:0\"\n  tls:\n    cert_file: %s\n    key_file: %s\n  bearer_token: {file: %s}", certFile, keyFile, tokenFile), 1)
	r := start(t, body, nil)
	if r.d.Scheme() != "https" {
		t.Fatalf("scheme %q", r.d.Scheme())
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}}
	t.Cleanup(transport.CloseIdleConnections)
	anon := &httpsClient{addr: r.d.Addr(), hc: &http.Client{Transport: transport, Timeout: 10 * time.Second}}
	prom := &httpsClient{addr: anon.addr, hc: anon.hc, token: token1}

	if err := pgtest.Poll(ctx, 20*time.Second, func() bool { c, _ := anon.get(t, "/readyz"); return c == 200 }); err != nil {
		t.Fatal("never ready over HTTPS")
	}
	if c, _ := anon.get(t, "/healthz"); c != 200 {
		t.Errorf("/healthz without the token: %d", c)
	}
	for _, path := range []string{"/metrics", "/api/v1/status"} {
		if c, b := anon.get(t, path); c != 401 || strings.Contains(b, "pglmon_") || strings.Contains(b, "sub_0") {
			t.Errorf("%s without the token: %d %q", path, c, b)
		}
	}
	c, metrics := prom.get(t, "/metrics")
	if c != 200 || !strings.Contains(metrics, `pglmon_subscription_health{subscriber="subscriber",subscription="sub_0"}`) {
		t.Fatalf("/metrics with the token: %d\n%s", c, grepLines(metrics, "pglmon_subscription"))
	}
	expiry := regexp.MustCompile(`(?m)^pglmon_http_tls_certificate_expiry_timestamp_seconds (\S+)$`)
	if m := expiry.FindStringSubmatch(metrics); m == nil || m[1] != strconv.FormatInt(first.Cert.NotAfter.Unix(), 10) && m[1] != fmt.Sprintf("%g", float64(first.Cert.NotAfter.Unix())) {
		t.Errorf("certificate expiry metric: %v, want %d", m, first.Cert.NotAfter.Unix())
	}
	if c, b := prom.get(t, "/api/v1/status"); c != 200 || !strings.Contains(b, `"sub_0"`) {
		t.Errorf("/api/v1/status with the token: %d", c)
	}
	// Plain HTTP to the HTTPS port is not served.
	if resp, err := http.Get("http://" + r.d.Addr() + "/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "pglmon_") {
			t.Errorf("plain HTTP served the metrics: %d", resp.StatusCode)
		}
	}

	// The token rotated in its file: the old one works until the reload,
	// then only the new one.
	if err := os.WriteFile(tokenFile, []byte(token2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.reload <- struct{}{}
	if err := pgtest.Poll(ctx, 10*time.Second, func() bool { c, _ := prom.get(t, "/metrics"); return c == 401 }); err != nil {
		t.Fatal("the old token still works after the reload")
	}
	prom.token = token2
	if c, _ := prom.get(t, "/metrics"); c != 200 {
		t.Errorf("the new token: %d", c)
	}
	// A token file that cannot be read refuses the reload: the running one stays.
	if err := os.Remove(tokenFile); err != nil {
		t.Fatal(err)
	}
	r.reload <- struct{}{}
	if err := pgtest.Poll(ctx, 10*time.Second, func() bool {
		return strings.Contains(r.logs.String(), "reload refused") && strings.Contains(r.logs.String(), "http.bearer_token")
	}); err != nil {
		t.Fatalf("a reload without the token file was not refused:\n%s", r.logs.String())
	}
	if c, _ := prom.get(t, "/metrics"); c != 200 {
		t.Errorf("after a refused reload, the running token: %d", c)
	}

	// The certificate renewed in place: served, and the metric follows,
	// without a restart or a reload.
	second := ca.Server(t, "pglmon-renewed", time.Now().Add(90*24*time.Hour), certFile, keyFile)
	transport.CloseIdleConnections()
	if err := pgtest.Poll(ctx, 20*time.Second, func() bool {
		transport.CloseIdleConnections()
		_, m := prom.get(t, "/metrics")
		g := expiry.FindStringSubmatch(m)
		return g != nil && (g[1] == strconv.FormatInt(second.Cert.NotAfter.Unix(), 10) || g[1] == fmt.Sprintf("%g", float64(second.Cert.NotAfter.Unix())))
	}); err != nil {
		t.Fatal("the renewed certificate's expiry never showed")
	}
	conn, err := tls.Dial("tcp", r.d.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "pglmon-renewed" {
		t.Errorf("served certificate %q after the renewal", cn)
	}
	conn.Close()

	logs := r.logs.String()
	for _, secret := range []string{token1, token2, "PRIVATE KEY"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
	if !strings.Contains(logs, `"scheme":"https"`) {
		t.Errorf("the start line does not say https:\n%s", logs)
	}
}

// Listening beyond loopback without a token is said at start.
func TestDaemonWarnsOfAnOpenListener(t *testing.T) {
	t.Parallel()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	body := strings.Replace(pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff()), `"127.0.0.1:0"`, `":0"`, 1)
	r := start(t, body, nil)
	// The warning follows the start line: wait for the first cycle, which
	// comes after both.
	if err := pgtest.Poll(context.Background(), 10*time.Second, func() bool { return strings.Contains(r.logs.String(), "first cycle complete") }); err != nil {
		t.Fatalf("never ready:\n%s", r.logs.String())
	}
	if !strings.Contains(r.logs.String(), "http.bearer_token is not set") {
		t.Errorf("no warning for :0 without a token:\n%s", r.logs.String())
	}
}
