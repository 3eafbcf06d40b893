// Package credentials supplies node passwords held in AWS: a Secrets Manager
// secret (plain, or the JSON form RDS manages) fetched and cached, or an RDS
// IAM authentication token generated for every new connection. It plugs
// into config.Node.ResolvePassword through config.ExternalSecrets.
package credentials

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/config"
)

// Provider implements config.ExternalSecrets.
type Provider struct {
	cfg *config.Config
	aws *awsclient.Factory
	// Signer, when set, replaces the SDK's credential chain for IAM tokens.
	Signer aws.CredentialsProvider
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	value   config.Secret
	fetched time.Time
}

// Attach gives cfg's AWS-held passwords a provider; nil when none is needed.
func Attach(cfg *config.Config, o awsclient.Options) *Provider {
	need := false
	for _, n := range cfg.Nodes {
		need = need || n.Password.IsExternal()
	}
	if !need {
		return nil
	}
	p := &Provider{cfg: cfg, aws: awsclient.New(cfg.AWS, o), now: time.Now, cache: map[string]cached{}}
	cfg.UseExternalSecrets(p)
	return p
}

// Password returns the node's password for a new connection.
func (p *Provider) Password(ctx context.Context, n config.Node) (config.Secret, error) {
	switch {
	case n.Password.RDSIAM:
		return p.iamToken(ctx, n)
	case n.Password.SecretsManager != nil:
		return p.secret(ctx, n)
	}
	return "", fmt.Errorf("node %s: no AWS password source", n.Name)
}

// Forget drops the cached secret, so the next connection fetches it again
// (after a rotation the old password fails authentication).
func (p *Provider) Forget(n config.Node) {
	p.mu.Lock()
	delete(p.cache, n.Name)
	p.mu.Unlock()
}

func (p *Provider) secret(ctx context.Context, n config.Node) (config.Secret, error) {
	sm := n.Password.SecretsManager
	refresh := sm.Refresh.D()
	if refresh <= 0 {
		refresh = 15 * time.Minute
	}
	p.mu.Lock()
	c, ok := p.cache[n.Name]
	p.mu.Unlock()
	if ok && p.now().Sub(c.fetched) < refresh {
		return c.value, nil
	}
	what := fmt.Sprintf("node %s: password.secrets_manager %s", n.Name, sm.SecretID)
	client, err := p.aws.SecretsManager(ctx, p.cfg.SecretRegion(n))
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(sm.SecretID)})
	if err != nil {
		return "", awsclient.Explain(what, err)
	}
	if out.SecretString == nil {
		return "", fmt.Errorf("%s: the secret holds binary data, not a string", what)
	}
	v, err := passwordFrom(*out.SecretString, sm.Key)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	p.mu.Lock()
	p.cache[n.Name] = cached{value: v, fetched: p.now()}
	p.mu.Unlock()
	return v, nil
}

// passwordFrom takes the password out of a secret string: a JSON object's
// key (default "password", as in RDS-managed secrets), or the whole string.
func passwordFrom(s, key string) (config.Secret, error) {
	if key == "" {
		key = "password"
	}
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, "{") {
		if t == "" {
			return "", fmt.Errorf("the secret is empty")
		}
		return config.Secret(s), nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(t), &m); err != nil {
		// Never quote the secret: say only what is wrong with it.
		return "", fmt.Errorf("the secret looks like JSON but does not parse")
	}
	v, ok := m[key].(string)
	if !ok || v == "" {
		fields := make([]string, 0, len(m))
		for k := range m {
			fields = append(fields, k)
		}
		return "", fmt.Errorf("the secret's JSON has no string field %q (fields: %s); set secrets_manager.key", key, strings.Join(fields, ", "))
	}
	return config.Secret(v), nil
}

// iamToken signs a fresh RDS IAM authentication token for the node's host,
// port and user. Tokens are valid for 15 minutes and are never cached: each
// connection gets its own.
func (p *Provider) iamToken(ctx context.Context, n config.Node) (config.Secret, error) {
	pc, err := pgx.ParseConfig(n.DSN)
	if err != nil {
		return "", fmt.Errorf("node %s: invalid dsn", n.Name)
	}
	if strings.HasPrefix(pc.Host, "/") {
		return "", fmt.Errorf("node %s: password.rds_iam needs a TCP host in the dsn, not the socket directory %s", n.Name, pc.Host)
	}
	region := p.cfg.NodeRegion(n)
	creds := p.Signer
	if creds == nil {
		c, err := p.aws.Config(ctx, region)
		if err != nil {
			return "", fmt.Errorf("node %s: %w", n.Name, err)
		}
		creds = c.Credentials
	}
	endpoint := fmt.Sprintf("%s:%d", pc.Host, pc.Port)
	tok, err := auth.BuildAuthToken(ctx, endpoint, region, pc.User, creds)
	if err != nil {
		return "", awsclient.Explain(fmt.Sprintf("node %s: RDS IAM token", n.Name), err)
	}
	return config.Secret(tok), nil
}
