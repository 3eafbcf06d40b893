package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/probe"
)

// BenchmarkScrape50Subscriptions serves /metrics for 50 subscriptions and
// their slots from the per-cycle cache, with and without gzip (Prometheus
// asks for gzip). The render itself happens once per cycle, off the scrape.
func BenchmarkScrape50Subscriptions(b *testing.B) {
	reg := prometheus.NewRegistry()
	s := New(reg, "v", func() bool { return true })
	var r diagnose.Report
	var slots []probe.Slot
	for i := range 50 {
		lag := int64(i)
		r.Subscriptions = append(r.Subscriptions, diagnose.Subscription{Name: fmt.Sprintf("sub_%d", i), Subscriber: "subscriber",
			Provider: "provider", Status: "replicating", LagBytes: &lag})
		slots = append(slots, probe.Slot{Name: fmt.Sprintf("pgl_db_provider_sub_%d", i), Active: true, WALStatus: "reserved"})
	}
	s.Observe(r, []probe.Snapshot{{Node: "provider", Time: time.Now(), Slots: slots}, {Node: "subscriber", Time: time.Now()}})
	cache := NewCache(reg, func() time.Duration { return time.Hour })
	if err := cache.Render(); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(cache)
	defer srv.Close()
	for _, enc := range []string{"gzip", "identity"} {
		b.Run(enc, func(b *testing.B) {
			for b.Loop() {
				req, _ := http.NewRequest("GET", srv.URL, nil)
				req.Header.Set("Accept-Encoding", enc)
				resp, err := http.DefaultTransport.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
