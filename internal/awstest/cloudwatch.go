package awstest

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

// CloudWatch speaks Smithy RPC v2 CBOR, as the SDK's CloudWatch client does
// (POST /service/GraniteServiceVersion20100801/operation/<Operation>, CBOR
// bodies, timestamps as tag 1 epoch seconds), signed for "monitoring".

// Datapoint is one value of a metric at a time.
type Datapoint struct {
	At    time.Time
	Value float64
}

func metricKey(namespace, metric, instance string) string {
	return namespace + "/" + metric + "/" + instance
}

// SetMetric replaces the datapoints of an RDS instance's metric (namespace
// AWS/RDS, dimension DBInstanceIdentifier), e.g. FreeStorageSpace in bytes.
func (s *Server) SetMetric(instance, metric string, points []Datapoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metrics[metricKey("AWS/RDS", metric, instance)] = append([]Datapoint(nil), points...)
}

// MetricQueries lists, for each GetMetricData query received, its
// "namespace metric dimension=value stat period".
func (s *Server) MetricQueries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.metricQueries...)
}

func writeCBORError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("Content-Type", "application/cbor")
	w.Header().Set("X-Amzn-Query-Error", code+";Sender")
	w.WriteHeader(status)
	_, _ = w.Write(cbor.Encode(cbor.Map{"__type": cbor.String("com.amazonaws.cloudwatch#" + code), "message": cbor.String(msg)}))
}

func (s *Server) serveRPCv2(w http.ResponseWriter, r *http.Request, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/service/"), "/")
	if len(parts) != 3 || parts[0] != "GraniteServiceVersion20100801" || parts[1] != "operation" {
		writeCBORError(w, 404, "UnknownOperationException", "unknown path "+r.URL.Path)
		return
	}
	op := parts[2]
	s.calls = append(s.calls, op)
	s.checkAuth(r, "monitoring")
	if !strings.EqualFold(r.Header.Get("Smithy-Protocol"), "rpc-v2-cbor") || r.Method != http.MethodPost {
		writeCBORError(w, 400, "InvalidParameterValue", "not an rpc-v2-cbor request")
		return
	}
	if s.failInjected(op, cloudWatchErrors, func(status int, code, msg string) { writeCBORError(w, status, code, msg) }) {
		return
	}
	if op != "GetMetricData" {
		writeCBORError(w, 400, "UnknownOperationException", op+" is not served by this fake")
		return
	}
	v, err := cbor.Decode(body)
	in, ok := v.(cbor.Map)
	if err != nil || !ok {
		writeCBORError(w, 400, "SerializationException", fmt.Sprintf("body is not a CBOR map: %v", err))
		return
	}
	start, okStart := cborTime(in["StartTime"])
	end, okEnd := cborTime(in["EndTime"])
	if !okStart || !okEnd || !end.After(start) {
		writeCBORError(w, 400, "InvalidParameterValue", "StartTime and EndTime are required, StartTime before EndTime")
		return
	}
	queries, _ := in["MetricDataQueries"].(cbor.List)
	var results cbor.List
	for _, qv := range queries {
		q, _ := qv.(cbor.Map)
		id, _ := q["Id"].(cbor.String)
		ms, _ := q["MetricStat"].(cbor.Map)
		m, _ := ms["Metric"].(cbor.Map)
		ns, _ := m["Namespace"].(cbor.String)
		name, _ := m["MetricName"].(cbor.String)
		stat, _ := ms["Stat"].(cbor.String)
		period := cborInt(ms["Period"])
		var dims []string
		instance := ""
		dl, _ := m["Dimensions"].(cbor.List)
		for _, dv := range dl {
			d, _ := dv.(cbor.Map)
			dn, _ := d["Name"].(cbor.String)
			dval, _ := d["Value"].(cbor.String)
			dims = append(dims, string(dn)+"="+string(dval))
			if dn == "DBInstanceIdentifier" {
				instance = string(dval)
			}
		}
		s.metricQueries = append(s.metricQueries, fmt.Sprintf("%s %s %s %s %d", ns, name, strings.Join(dims, ","), stat, period))
		if id == "" || period <= 0 || period%60 != 0 || stat == "" {
			writeCBORError(w, 400, "InvalidParameterValue", "each query needs an Id, a Stat and a Period that is a multiple of 60")
			return
		}
		// Newest first, as TimestampDescending (the default) returns them.
		var ts, vals cbor.List
		pts := s.metrics[metricKey(string(ns), string(name), instance)]
		for i := len(pts) - 1; i >= 0; i-- {
			p := pts[i]
			if p.At.Before(start) || !p.At.Before(end) {
				continue
			}
			ts = append(ts, &cbor.Tag{ID: 1, Value: cbor.Float64(float64(p.At.UnixMilli()) / 1000)})
			vals = append(vals, cbor.Float64(p.Value))
		}
		results = append(results, cbor.Map{"Id": id, "Label": name, "Timestamps": ts, "Values": vals, "StatusCode": cbor.String("Complete")})
	}
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("Content-Type", "application/cbor")
	_, _ = w.Write(cbor.Encode(cbor.Map{"MetricDataResults": results, "Messages": cbor.List{}}))
}

func cborTime(v cbor.Value) (time.Time, bool) {
	t, ok := v.(*cbor.Tag)
	if !ok || t.ID != 1 {
		return time.Time{}, false
	}
	var secs float64
	switch x := t.Value.(type) {
	case cbor.Float64:
		secs = float64(x)
	case cbor.Float32:
		secs = float64(x)
	case cbor.Uint:
		secs = float64(x)
	default:
		return time.Time{}, false
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)), true
}

func cborInt(v cbor.Value) int64 {
	switch x := v.(type) {
	case cbor.Uint:
		return int64(x)
	case cbor.NegInt:
		return -int64(x)
	}
	return 0
}
