package awsclient

import (
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
)

func TestExplain(t *testing.T) {
	api := &smithy.GenericAPIError{Code: "Throttling", Message: "Rate exceeded"}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{api, "RDS instance db1: Throttling: Rate exceeded"},
		{&retry.MaxAttemptsError{Attempt: 5, Err: api}, "RDS instance db1: Throttling: Rate exceeded (still failing after 5 attempts; try again later or raise aws.max_attempts)"},
		{&retry.MaxAttemptsError{Attempt: 3, Err: errors.New("dial tcp: connection refused")}, "RDS instance db1: failed after 3 attempts: dial tcp: connection refused"},
		{errors.New("no EC2 IMDS role found"), "RDS instance db1: no EC2 IMDS role found"},
		{errors.New("get identity: get credentials: failed to refresh cached credentials, no EC2 IMDS role found"),
			"RDS instance db1: get identity: get credentials: failed to refresh cached credentials, no EC2 IMDS role found (no AWS credentials found: set aws.profile, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, web identity, or give the host an instance or task role)"},
	} {
		got := Explain("RDS instance db1", tc.err)
		if got.Error() != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
		if !errors.Is(got, tc.err) {
			t.Errorf("%q does not wrap the SDK error", got)
		}
	}
	if Explain("x", nil) != nil {
		t.Error("nil error explained")
	}
	if Code(Explain("x", api)) != "Throttling" {
		t.Error("Code does not see through Explain")
	}
}
