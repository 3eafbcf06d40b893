// Package rdsstorage reads how much storage an Amazon RDS instance has left
// (CloudWatch's FreeStorageSpace, against the storage RDS allocated it) and
// how fast it is going: a replication slot that nothing consumes keeps every
// byte of WAL written since, until the instance is storage-full and stops.
package rdsstorage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/rdsadmin"
)

// API is the part of the CloudWatch client pglmon uses.
type API interface {
	GetMetricData(context.Context, *cloudwatch.GetMetricDataInput, ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error)
}

// Window is how far back the free storage is read: the trend is fitted over it.
const Window = time.Hour

const gib = 1 << 30

// Reading is an instance's storage as last read.
type Reading struct {
	Instance string `json:"instance"`
	// FreeBytes is the last minute's minimum FreeStorageSpace, at At.
	FreeBytes float64   `json:"free_bytes"`
	At        time.Time `json:"at"`
	// AllocatedBytes is the instance's storage; MaxAllocatedBytes the limit
	// storage autoscaling may grow it to (0: autoscaling off).
	AllocatedBytes    int64 `json:"allocated_bytes"`
	MaxAllocatedBytes int64 `json:"max_allocated_bytes,omitempty"`
	// FallingBytesPerHour is how fast the free storage fell over the
	// window (least squares over its minutes; negative when it grew); 0
	// when fewer than 10 minutes of data were there to fit.
	FallingBytesPerHour float64 `json:"falling_bytes_per_hour"`
	// Points is how many minutes of data the window held.
	Points int `json:"points"`
}

// FreePercent is the free storage in percent of the allocated storage.
func (r Reading) FreePercent() float64 {
	if r.AllocatedBytes <= 0 {
		return 100
	}
	return 100 * r.FreeBytes / float64(r.AllocatedBytes)
}

// FullIn is when, at the window's rate, the free storage reaches zero; false
// when it is not falling.
func (r Reading) FullIn() (time.Duration, bool) {
	if r.FallingBytesPerHour <= 0 {
		return 0, false
	}
	h := max(r.FreeBytes, 0) / r.FallingBytesPerHour
	if h > 24*365*100 {
		return 0, false
	}
	return time.Duration(h * float64(time.Hour)), true
}

// Read reads the free storage of RDS instance id over the Window before now;
// allocated and maxAllocated (GiB) are what DescribeDBInstances reports.
func Read(ctx context.Context, cw API, id string, allocated, maxAllocated int64, now time.Time) (Reading, error) {
	in := &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(now.Add(-Window)),
		EndTime:   aws.Time(now),
		ScanBy:    types.ScanByTimestampAscending,
		MetricDataQueries: []types.MetricDataQuery{{
			Id: aws.String("free"),
			MetricStat: &types.MetricStat{
				Metric: &types.Metric{
					Namespace:  aws.String("AWS/RDS"),
					MetricName: aws.String("FreeStorageSpace"),
					Dimensions: []types.Dimension{{Name: aws.String("DBInstanceIdentifier"), Value: aws.String(id)}},
				},
				Period: aws.Int32(60),
				Stat:   aws.String("Minimum"),
			},
			ReturnData: aws.Bool(true),
		}},
	}
	type point struct {
		at time.Time
		v  float64
	}
	var pts []point
	for {
		out, err := cw.GetMetricData(ctx, in)
		if err != nil {
			return Reading{}, awsclient.Explain("CloudWatch FreeStorageSpace of RDS instance "+id, err)
		}
		for _, res := range out.MetricDataResults {
			if aws.ToString(res.Id) != "free" {
				continue
			}
			for i := range min(len(res.Timestamps), len(res.Values)) {
				pts = append(pts, point{res.Timestamps[i], res.Values[i]})
			}
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	if len(pts) == 0 {
		return Reading{}, fmt.Errorf("CloudWatch FreeStorageSpace of RDS instance %s: no data in the last %s (is the identifier or the region wrong?)", id, Window)
	}
	r := Reading{Instance: id, AllocatedBytes: allocated * gib, MaxAllocatedBytes: maxAllocated * gib, Points: len(pts)}
	first, last := pts[0], pts[0]
	for _, p := range pts {
		if p.at.Before(first.at) {
			first = p
		}
		if !p.at.Before(last.at) {
			last = p
		}
	}
	r.FreeBytes, r.At = last.v, last.at
	if last.at.Sub(first.at) >= 10*time.Minute && len(pts) >= 3 {
		// Least squares slope, in bytes per hour.
		var n, sx, sy, sxx, sxy float64
		for _, p := range pts {
			x := p.at.Sub(first.at).Hours()
			n++
			sx += x
			sy += p.v
			sxx += x * x
			sxy += x * p.v
		}
		if d := n*sxx - sx*sx; d > 0 {
			r.FallingBytesPerHour = -(n*sxy - sx*sy) / d
			if math.IsNaN(r.FallingBytesPerHour) || math.IsInf(r.FallingBytesPerHour, 0) {
				r.FallingBytesPerHour = 0
			}
		}
	}
	return r, nil
}

// ErrAurora is ReadNode's error for an Aurora instance: its cluster volume
// grows by itself (to 128 TiB) and has no FreeStorageSpace; callers skip it.
var ErrAurora = errors.New("an Aurora instance: its cluster volume grows by itself")

// ReadNode reads the storage of node n (which has rds:): its allocated
// storage from RDS (DescribeDBInstances), its free storage from CloudWatch.
func ReadNode(ctx context.Context, f *awsclient.Factory, cfg *config.Config, n config.Node, now time.Time) (Reading, error) {
	rc, err := rdsadmin.ForNode(ctx, f, cfg, n)
	if err != nil {
		return Reading{}, err
	}
	in, err := rc.Describe(ctx, n.RDS.Identifier)
	if err != nil {
		return Reading{}, err
	}
	if strings.HasPrefix(in.Engine, "aurora") {
		return Reading{}, ErrAurora
	}
	cw, err := f.CloudWatch(ctx, cfg.NodeRegion(n))
	if err != nil {
		return Reading{}, err
	}
	return Read(ctx, cw, n.RDS.Identifier, in.AllocatedGiB, in.MaxAllocatedGiB, now)
}
