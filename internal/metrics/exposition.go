package metrics

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

// exposition is the text exposition rendered at the end of a cycle.
type exposition struct {
	plain, gz []byte
	at        time.Time
}

// Cache serves /metrics from an exposition rendered once per cycle, so a
// scrape costs a write, not a gather. A copy older than maxAge (the loop is
// stuck) is not served: the registry is gathered live, and pglmon_up says so.
type Cache struct {
	g      prometheus.Gatherer
	maxAge func() time.Duration
	cur    atomic.Pointer[exposition]
	live   http.Handler
}

// NewCache returns a cache over g.
func NewCache(g prometheus.Gatherer, maxAge func() time.Duration) *Cache {
	return &Cache{g: g, maxAge: maxAge, live: promhttp.HandlerFor(g, promhttp.HandlerOpts{})}
}

// Render gathers and encodes the metrics now.
func (c *Cache) Render() error {
	mfs, err := c.g.Gather()
	if err != nil {
		return err
	}
	var plain bytes.Buffer
	enc := expfmt.NewEncoder(&plain, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zw.Write(plain.Bytes())
	if err := zw.Close(); err != nil {
		return err
	}
	c.cur.Store(&exposition{plain: plain.Bytes(), gz: gz.Bytes(), at: time.Now()})
	return nil
}

// ServeHTTP writes the last rendered exposition.
func (c *Cache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e := c.cur.Load()
	if e == nil || time.Since(e.at) > c.maxAge() {
		c.live.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(e.gz)
		return
	}
	w.Write(e.plain)
}
