// Package awsclient builds AWS SDK clients from pglmon's `aws:` settings
// and turns SDK errors into messages an operator can act on.
package awsclient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/pglmon/pglmon/internal/config"
)

// Options are settings that are not in the configuration file.
type Options struct {
	// RetryMaxBackoff caps the wait between retries; the SDK's 20 s when zero.
	RetryMaxBackoff time.Duration
}

// Factory makes clients, loading the SDK configuration once per region.
type Factory struct {
	cfg  config.AWS
	opts Options

	mu   sync.Mutex
	base map[string]aws.Config
}

// New returns a factory for the `aws:` section c.
func New(c config.AWS, o Options) *Factory {
	return &Factory{cfg: c, opts: o, base: map[string]aws.Config{}}
}

// Config returns the SDK configuration for region: credentials from the
// default chain (or aws.profile), and the retry policy of aws.max_attempts.
func (f *Factory) Config(ctx context.Context, region string) (aws.Config, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.base[region]; ok {
		return c, nil
	}
	attempts := f.cfg.MaxAttempts
	if attempts <= 0 {
		attempts = 5
	}
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(region),
		// The SDK would print its own warnings to stderr; errors reach the caller.
		awsconfig.WithLogger(logging.Nop{}),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				if f.opts.RetryMaxBackoff > 0 {
					o.MaxBackoff = f.opts.RetryMaxBackoff
				}
			})
		}),
	}
	if f.cfg.Profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(f.cfg.Profile))
	}
	c, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("aws: load configuration (region %s): %w", region, err)
	}
	f.base[region] = c
	return c, nil
}

// RDS returns an RDS client for region.
func (f *Factory) RDS(ctx context.Context, region string) (*rds.Client, error) {
	c, err := f.Config(ctx, region)
	if err != nil {
		return nil, err
	}
	return rds.NewFromConfig(c, func(o *rds.Options) {
		if f.cfg.Endpoints.RDS != "" {
			o.BaseEndpoint = aws.String(f.cfg.Endpoints.RDS)
		}
	}), nil
}

// SecretsManager returns a Secrets Manager client for region.
func (f *Factory) SecretsManager(ctx context.Context, region string) (*secretsmanager.Client, error) {
	c, err := f.Config(ctx, region)
	if err != nil {
		return nil, err
	}
	return secretsmanager.NewFromConfig(c, func(o *secretsmanager.Options) {
		if f.cfg.Endpoints.SecretsManager != "" {
			o.BaseEndpoint = aws.String(f.cfg.Endpoints.SecretsManager)
		}
	}), nil
}

// CloudWatch returns a CloudWatch client for region.
func (f *Factory) CloudWatch(ctx context.Context, region string) (*cloudwatch.Client, error) {
	c, err := f.Config(ctx, region)
	if err != nil {
		return nil, err
	}
	return cloudwatch.NewFromConfig(c, func(o *cloudwatch.Options) {
		if f.cfg.Endpoints.CloudWatch != "" {
			o.BaseEndpoint = aws.String(f.cfg.Endpoints.CloudWatch)
		}
	}), nil
}

// Explain rewrites an SDK error as "what: CODE: message", saying when
// throttling or server errors outlasted every retry.
func Explain(what string, err error) error {
	if err == nil {
		return nil
	}
	var maxErr *retry.MaxAttemptsError
	gaveUp := errors.As(err, &maxErr)
	var api smithy.APIError
	if errors.As(err, &api) {
		msg := fmt.Sprintf("%s: %s: %s", what, api.ErrorCode(), api.ErrorMessage())
		if gaveUp {
			msg += fmt.Sprintf(" (still failing after %d attempts; try again later or raise aws.max_attempts)", maxErr.Attempt)
		}
		return &Error{Msg: msg, Code: api.ErrorCode(), err: err}
	}
	hint := ""
	if strings.Contains(err.Error(), "failed to refresh cached credentials") || strings.Contains(err.Error(), "get credentials") {
		hint = " (no AWS credentials found: set aws.profile, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, web identity, or give the host an instance or task role)"
	}
	if gaveUp {
		return &Error{Msg: fmt.Sprintf("%s: failed after %d attempts: %v%s", what, maxErr.Attempt, errors.Unwrap(maxErr), hint), err: err}
	}
	return &Error{Msg: fmt.Sprintf("%s: %v%s", what, err, hint), err: err}
}

// Error is an explained AWS error.
type Error struct {
	Msg  string
	Code string // the AWS error code, when the service answered
	err  error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.err }

// Code returns the AWS error code of err, or "".
func Code(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}
