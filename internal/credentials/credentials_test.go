package credentials

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/awstest"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/probe"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func load(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func probeOnce(t *testing.T, p *probe.Prober) error {
	t.Helper()
	s := p.Probe(context.Background())
	return s.Err
}

// An RDS-managed secret (JSON with username and password) is fetched,
// cached across reconnections, and fetched again when the password is
// rotated and the server refuses the old one.
func TestSecretsManagerPasswordAndRotation(t *testing.T) {
	srv := awstest.New(t, "eu-west-1")
	a := srv.Env(t)
	const first, second = "Sup3r-s3cret-first", "Sup3r-s3cret-second"
	srv.SetSecret("rds!db-1234", `{"username":"postgres","password":"`+first+`"}`)
	provider, _ := pgtest.Shared(t)
	want := first
	px := pgtest.NewAuthProxy(t, provider, func(_, pw string) error {
		if pw != want {
			return errors.New("wrong password")
		}
		return nil
	})
	cfg := load(t, a.YAML()+fmt.Sprintf(`nodes:
  - name: db1
    dsn: %s
    password:
      secrets_manager: {secret_id: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1234"}
`, px.DSN("postgres")))
	if Attach(cfg, awsclient.Options{RetryMaxBackoff: time.Millisecond}) == nil {
		t.Fatal("no provider attached")
	}
	p := probe.NewProber(cfg.Nodes[0], 5*time.Second)
	defer p.Close(context.Background())
	if err := probeOnce(t, p); err != nil {
		t.Fatalf("probe with the secret's password: %v", err)
	}
	p.Close(context.Background())
	if err := probeOnce(t, p); err != nil {
		t.Fatal(err)
	}
	if n := srv.Count("GetSecretValue"); n != 1 {
		t.Errorf("the secret was fetched %d times for two connections; want 1 (cached)", n)
	}
	// Rotation: the server now wants the new password.
	srv.SetSecret("rds!db-1234", `{"username":"postgres","password":"`+second+`"}`)
	want = second
	p.Close(context.Background())
	err := probeOnce(t, p)
	if err == nil {
		t.Fatal("the old password was accepted")
	}
	if strings.Contains(err.Error(), first) || strings.Contains(err.Error(), second) {
		t.Fatalf("error leaks the password: %v", err)
	}
	if err := probeOnce(t, p); err != nil {
		t.Fatalf("after the refusal the secret must be fetched again: %v", err)
	}
	if got := px.Passwords(); len(got) != 4 || got[2] != first || got[3] != second {
		t.Errorf("passwords seen by the server: %d", len(got))
	}
	if errs := srv.AuthErrors(); len(errs) > 0 {
		t.Errorf("unsigned Secrets Manager requests: %v", errs)
	}
}

func TestSecretsManagerErrors(t *testing.T) {
	srv := awstest.New(t, "eu-west-1")
	a := srv.Env(t)
	srv.SetSecret("plain", "just-the-password")
	srv.SetSecret("nokey", `{"username":"postgres","pass":"hunter2-value"}`)
	cfg := load(t, a.YAML()+`nodes:
  - name: plain
    dsn: host=127.0.0.1
    password: {secrets_manager: {secret_id: plain}}
  - name: nokey
    dsn: host=127.0.0.1
    password: {secrets_manager: {secret_id: nokey}}
  - name: custom
    dsn: host=127.0.0.1
    password: {secrets_manager: {secret_id: nokey, key: pass}}
  - name: missing
    dsn: host=127.0.0.1
    password: {secrets_manager: {secret_id: gone}}
`)
	Attach(cfg, awsclient.Options{RetryMaxBackoff: time.Millisecond})
	node := func(name string) config.Node { n, _ := cfg.Node(name); return n }

	if pw, err := node("plain").ResolvePassword(); err != nil || pw.Reveal() != "just-the-password" {
		t.Errorf("a plain-string secret: %v", err)
	}
	_, err := node("nokey").ResolvePassword()
	if err == nil || !strings.Contains(err.Error(), `node nokey: password.secrets_manager nokey: the secret's JSON has no string field "password"`) || !strings.Contains(err.Error(), "set secrets_manager.key") {
		t.Errorf("JSON without the key: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the secret: %v", err)
	}
	if pw, err := node("custom").ResolvePassword(); err != nil || pw.Reveal() != "hunter2-value" {
		t.Errorf("secrets_manager.key: %v", err)
	}
	_, err = node("missing").ResolvePassword()
	if err == nil || err.Error() != "node missing: password.secrets_manager gone: ResourceNotFoundException: Secrets Manager can't find the specified secret." {
		t.Errorf("missing secret: %v", err)
	}
	// Throttling is retried; a 500 too.
	srv.Throttle(1)
	srv.Fail("GetSecretValue", 1)
	n := node("plain")
	n.ForgetPassword()
	if _, err := n.ResolvePassword(); err != nil {
		t.Errorf("throttled then failed once: %v", err)
	}
	srv.Throttle(100)
	n.ForgetPassword()
	_, err = n.ResolvePassword()
	if err == nil || !strings.Contains(err.Error(), "ThrottlingException: Rate exceeded (still failing after 3 attempts") {
		t.Errorf("persistent throttling: %v", err)
	}
}

type countingCreds struct {
	aws.CredentialsProvider
	n atomic.Int64
}

func (c *countingCreds) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c.n.Add(1)
	return c.CredentialsProvider.Retrieve(ctx)
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// checkToken verifies an RDS IAM auth token as RDS would: its form, its
// scope, its age, and its SigV4 signature recomputed from the secret key.
func checkToken(tok, host string, port int, user, region string, now time.Time) error {
	if strings.Contains(tok, "://") {
		return errors.New("the token must not carry a scheme")
	}
	u, err := url.Parse("https://" + tok)
	if err != nil {
		return err
	}
	if u.Host != fmt.Sprintf("%s:%d", host, port) || u.Path != "" {
		return fmt.Errorf("endpoint %s%s", u.Host, u.Path)
	}
	q := u.Query()
	for k, want := range map[string]string{"Action": "connect", "DBUser": user, "X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Expires": "900", "X-Amz-SignedHeaders": "host"} {
		if q.Get(k) != want {
			return fmt.Errorf("%s = %q, want %q", k, q.Get(k), want)
		}
	}
	signed, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("X-Amz-Date %q", q.Get("X-Amz-Date"))
	}
	if d := now.Sub(signed); d < -time.Second || d > time.Minute {
		return fmt.Errorf("signed %s ago: not fresh", d)
	}
	scope := fmt.Sprintf("%s/%s/%s/rds-db/aws4_request", awstest.AccessKeyID, signed.Format("20060102"), region)
	if q.Get("X-Amz-Credential") != scope {
		return fmt.Errorf("credential %q, want %q", q.Get("X-Amz-Credential"), scope)
	}
	sig := q.Get("X-Amz-Signature")
	if !hex64.MatchString(sig) {
		return fmt.Errorf("signature %q", sig)
	}
	// Recompute the presigned URL with the same inputs.
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://%s:%d?Action=connect&DBUser=%s&X-Amz-Expires=900", host, port, url.QueryEscape(user)), nil)
	empty := sha256.Sum256(nil)
	again, _, err := v4.NewSigner().PresignHTTP(context.Background(),
		aws.Credentials{AccessKeyID: awstest.AccessKeyID, SecretAccessKey: awstest.SecretAccessKey}, req, hex.EncodeToString(empty[:]), "rds-db", region, signed)
	if err != nil {
		return err
	}
	au, _ := url.Parse(again)
	if au.Query().Get("X-Amz-Signature") != sig {
		return errors.New("the signature does not verify")
	}
	return nil
}

// rds_iam: each new connection sends a new, valid IAM token as its password.
func TestIAMTokenFreshPerConnection(t *testing.T) {
	srv := awstest.New(t, "eu-central-1")
	a := srv.Env(t)
	provider, _ := pgtest.Shared(t)
	var checkErr atomic.Value
	px := pgtest.NewAuthProxy(t, provider, func(string, string) error { return errors.New("not ready") })
	// The token names the proxy's port, known only now.
	px.SetCheck(func(user, pw string) error {
		if err := checkToken(pw, px.Host, px.Port, user, "eu-central-1", time.Now()); err != nil {
			checkErr.Store(err.Error())
			return err
		}
		return nil
	})
	cfg := load(t, a.YAML()+fmt.Sprintf(`nodes:
  - name: db1
    dsn: %s
    password: {rds_iam: true}
`, strings.Replace(px.DSN("postgres"), "sslmode=disable", "sslmode=prefer", 1)))
	prov := Attach(cfg, awsclient.Options{})
	creds := &countingCreds{CredentialsProvider: credentials.NewStaticCredentialsProvider(awstest.AccessKeyID, awstest.SecretAccessKey, "")}
	prov.Signer = creds

	p := probe.NewProber(cfg.Nodes[0], 5*time.Second)
	defer p.Close(context.Background())
	if err := probeOnce(t, p); err != nil {
		t.Fatalf("connect with an IAM token: %v (check: %v)", err, checkErr.Load())
	}
	// Wait for the clock's second to turn, so a fresh token differs from the first.
	sec := time.Now().Unix()
	if err := pgtest.Poll(context.Background(), 3*time.Second, func() bool { return time.Now().Unix() != sec }); err != nil {
		t.Fatal(err)
	}
	p.Close(context.Background())
	if err := probeOnce(t, p); err != nil {
		t.Fatalf("second connection: %v (check: %v)", err, checkErr.Load())
	}
	got := px.Passwords()
	if len(got) != 2 || got[0] == got[1] {
		t.Fatalf("want two different tokens, got %d (equal: %v)", len(got), len(got) == 2 && got[0] == got[1])
	}
	if creds.n.Load() < 2 {
		t.Errorf("credentials retrieved %d times for two connections", creds.n.Load())
	}
	// A probe cycle on the open connection makes no token.
	if err := probeOnce(t, p); err != nil || len(px.Passwords()) != 2 {
		t.Errorf("an open connection was re-authenticated: %v", err)
	}
	// A token for a different user or region does not verify.
	if checkToken(got[0], px.Host, px.Port, "postgres", "us-east-1", time.Now()) == nil {
		t.Error("checkToken accepts a token for the wrong region")
	}
	if checkToken(strings.Replace(got[0], "Signature=", "Signature=0", 1)[:len(got[0])], px.Host, px.Port, "postgres", "eu-central-1", time.Now()) == nil {
		t.Error("checkToken accepts a tampered signature")
	}
}

func TestIAMTokenFromDefaultChain(t *testing.T) {
	srv := awstest.New(t, "eu-central-1")
	a := srv.Env(t)
	cfg := load(t, a.YAML()+`nodes:
  - name: db1
    dsn: host=db1.abc.eu-central-1.rds.amazonaws.com port=5432 user=pglmon dbname=app
    password: {rds_iam: true}
  - name: sock
    dsn: host=/var/run/postgresql user=pglmon
    password: {rds_iam: true}
`)
	Attach(cfg, awsclient.Options{})
	pw, err := cfg.Nodes[0].ResolvePassword()
	if err != nil {
		t.Fatal(err)
	}
	if err := checkToken(pw.Reveal(), "db1.abc.eu-central-1.rds.amazonaws.com", 5432, "pglmon", "eu-central-1", time.Now()); err != nil {
		t.Errorf("token from the environment's credentials: %v", err)
	}
	if fmt.Sprint(pw) != "<secret>" {
		t.Error("the token prints itself")
	}
	_, err = cfg.Nodes[1].ResolvePassword()
	if err == nil || !strings.Contains(err.Error(), "node sock: password.rds_iam needs a TCP host") {
		t.Errorf("socket dsn: %v", err)
	}
}
