package rdsstorage

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/awstest"
	"github.com/pglmon/pglmon/internal/config"
)

func client(t *testing.T, srv *awstest.Server) API {
	t.Helper()
	a := srv.Env(t)
	f := awsclient.New(config.AWS{Region: a.Region, MaxAttempts: 3, Endpoints: config.AWSEndpoints{CloudWatch: a.Endpoint}}, awsclient.Options{RetryMaxBackoff: 5 * time.Millisecond})
	cw, err := f.CloudWatch(context.Background(), a.Region)
	if err != nil {
		t.Fatal(err)
	}
	return cw
}

// falling returns a minute's datapoint for each of the last minutes minutes
// before now, free storage starting at start bytes and falling perHour.
func falling(now time.Time, minutes int, start, perHour float64) []awstest.Datapoint {
	var pts []awstest.Datapoint
	for i := minutes; i >= 1; i-- {
		at := now.Add(-time.Duration(i) * time.Minute).Truncate(time.Minute)
		elapsed := float64(minutes-i) / 60
		pts = append(pts, awstest.Datapoint{At: at, Value: start - perHour*elapsed})
	}
	return pts
}

// The free storage and its trend come from CloudWatch's FreeStorageSpace
// (AWS/RDS, the instance's dimension, minute minimums), through the SDK's
// own CloudWatch client and wire protocol; throttling is retried.
func TestReadFreeStorageAndTrend(t *testing.T) {
	srv := awstest.New(t, "eu-west-1")
	cw := client(t, srv)
	now := time.Now()
	srv.SetMetric("prov-db", "FreeStorageSpace", falling(now, 50, 20*gib, 4*gib))
	srv.SetMetric("other-db", "FreeStorageSpace", falling(now, 50, 90*gib, 0))
	srv.Throttle(1)

	r, err := Read(context.Background(), cw, "prov-db", 100, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.MetricQueries(); len(got) != 1 || got[0] != "AWS/RDS FreeStorageSpace DBInstanceIdentifier=prov-db Minimum 60" {
		t.Errorf("queries: %q", got)
	}
	if n := srv.Count("GetMetricData"); n != 2 {
		t.Errorf("GetMetricData calls: %d, want 2 (one throttled, retried)", n)
	}
	if len(srv.AuthErrors()) != 0 {
		t.Errorf("signing: %v", srv.AuthErrors())
	}
	if r.Points != 50 {
		t.Errorf("points: %d", r.Points)
	}
	wantFree := 20*gib - 4*gib*49.0/60
	if math.Abs(r.FreeBytes-wantFree) > 1 {
		t.Errorf("free: %.0f, want the newest point %.0f", r.FreeBytes, wantFree)
	}
	if math.Abs(r.FallingBytesPerHour-4*gib) > gib/1000 {
		t.Errorf("falling %.0f bytes/h, want %d", r.FallingBytesPerHour, 4*gib)
	}
	full, ok := r.FullIn()
	if want := time.Duration(wantFree / (4 * gib) * float64(time.Hour)); !ok || (full-want).Abs() > time.Minute {
		t.Errorf("full in %s (%v), want about %s", full, ok, want)
	}
	if p := r.FreePercent(); math.Abs(p-100*wantFree/(100*gib)) > 0.01 {
		t.Errorf("free percent %.2f", p)
	}

	steady, err := Read(context.Background(), cw, "other-db", 100, 200, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := steady.FullIn(); ok || steady.MaxAllocatedBytes != 200*gib {
		t.Errorf("steady instance: %+v", steady)
	}

	// Too little history for a trend: the free storage, no forecast.
	srv.SetMetric("new-db", "FreeStorageSpace", falling(now, 3, 50*gib, 100*gib))
	short, err := Read(context.Background(), cw, "new-db", 100, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := short.FullIn(); ok || short.Points != 3 {
		t.Errorf("3 minutes of data gave a forecast: %+v", short)
	}

	// No data: the identifier or region is wrong; say so.
	_, err = Read(context.Background(), cw, "nosuch-db", 100, 0, now)
	if err == nil || !strings.Contains(err.Error(), "nosuch-db") || !strings.Contains(err.Error(), "no data") {
		t.Errorf("no data: %v", err)
	}

	// An error the service keeps returning is explained, naming the instance.
	srv.Fail("GetMetricData", 5)
	_, err = Read(context.Background(), cw, "prov-db", 100, 0, now)
	if err == nil || !strings.Contains(err.Error(), "RDS instance prov-db") || !strings.Contains(err.Error(), "InternalServiceError") {
		t.Errorf("failing service: %v", err)
	}
}

// ReadNode takes the allocated storage (and the autoscaling limit) from
// DescribeDBInstances, and skips Aurora, whose volume grows by itself.
func TestReadNode(t *testing.T) {
	srv := awstest.New(t, "eu-west-1")
	a := srv.Env(t)
	cfg, err := config.Parse("pglmon.yaml", []byte(a.YAML()+"nodes:\n  - name: p\n    dsn: host=x\n    rds: {identifier: prov-db}\n  - name: au\n    dsn: host=y\n    rds: {identifier: aurora-1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	srv.AddInstance("prov-db", "15.7", "pg15", nil)
	srv.SetStorage("prov-db", 500, 1000)
	srv.AddInstance("aurora-1", "15.7", "aurora15", nil)
	srv.SetEngine("aurora-1", "aurora-postgresql")
	now := time.Now()
	srv.SetMetric("prov-db", "FreeStorageSpace", falling(now, 20, 400*gib, 0))
	f := awsclient.New(cfg.AWS, awsclient.Options{})
	p, _ := cfg.Node("p")
	r, err := ReadNode(context.Background(), f, cfg, p, now)
	if err != nil {
		t.Fatal(err)
	}
	if r.AllocatedBytes != 500*gib || r.MaxAllocatedBytes != 1000*gib || r.FreeBytes != 400*gib || r.Instance != "prov-db" {
		t.Errorf("reading: %+v", r)
	}
	au, _ := cfg.Node("au")
	calls := srv.Count("GetMetricData")
	if _, err := ReadNode(context.Background(), f, cfg, au, now); !errors.Is(err, ErrAurora) {
		t.Errorf("aurora: %v", err)
	}
	if srv.Count("GetMetricData") != calls {
		t.Error("CloudWatch was asked about an Aurora instance")
	}
}
