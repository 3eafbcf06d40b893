package logtail

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/jackc/pgx/v5"
)

// maxCompressedCopy bounds the compressed copy of a log a follower reads
// whole (pg_read_binary_file) to find where its last read ended.
const maxCompressedCopy = 32 << 20

// copyNames are the names logrotate gives the copy of file it made before
// truncating it (copytruncate): file.1 (compressed at once without
// delaycompress: file.1.gz), or with dateext file-YYYYMMDD (and .gz), dated
// by the host's clock: the day before, of, or after now in UTC.
func copyNames(file string, now time.Time) []string {
	names := []string{file + ".1", file + ".1.gz"}
	for _, d := range []time.Time{now, now.AddDate(0, 0, -1), now.AddDate(0, 0, 1)} {
		dated := file + "-" + d.UTC().Format("20060102")
		names = append(names, dated, dated+".gz")
	}
	return names
}

// rotatedCopy finds the copy logrotate made of file before truncating it,
// by the Mark of the position the last read ended at (prev), and returns
// the rest of it from there; ok is false when no copy holds that position
// (why says what was tried).
func (f *Follower) rotatedCopy(ctx context.Context, conn *pgx.Conn, file string, prev Position, span func(name string, from, to int64) part, holds func(name string, off int64) bool) (p part, ok bool, why string) {
	if prev.Mark == "" {
		return part{}, false, "no fingerprint of where the last read ended to find its copy by"
	}
	tried := 0
	for _, name := range copyNames(file, time.Now()) {
		size, err := fileSize(ctx, conn, name)
		if err != nil || size < 0 {
			continue
		}
		tried++
		if path.Ext(name) != ".gz" {
			if size >= prev.Offset && holds(name, prev.Offset) {
				return span(name, prev.Offset, size), true, ""
			}
			continue
		}
		if size > maxCompressedCopy {
			why = fmt.Sprintf("%s is larger than the %d MiB pglmon reads of a compressed copy", path.Base(name), maxCompressedCopy>>20)
			continue
		}
		rest, found, err := compressedRest(ctx, conn, name, size, prev, f.max())
		if err != nil {
			why = fmt.Sprintf("%s could not be read: %v", path.Base(name), err)
			continue
		}
		if found {
			return bytesPart(name, rest), true, ""
		}
	}
	if why == "" {
		why = fmt.Sprintf("no copy of it (%s, or dated: -YYYYMMDD, compressed or not) holds where the last read ended", path.Base(file)+".1")
		if tried == 0 {
			why = fmt.Sprintf("no copy of it (%s, or dated: -YYYYMMDD, compressed or not) is there", path.Base(file)+".1")
		}
	}
	return part{}, false, why
}

// compressedRest reads a gzip copy of a log whole and returns what follows
// prev's offset in it, at most limit bytes past it (the rest is cut at the
// next read, as the newest part of a log is kept), when the bytes before
// that offset are the ones prev's Mark fingerprints.
func compressedRest(ctx context.Context, conn *pgx.Conn, name string, size int64, prev Position, limit int64) ([]byte, bool, error) {
	raw, err := readRange(ctx, conn, name, 0, size)
	if err != nil {
		return nil, false, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, false, err
	}
	n := min(prev.Offset, markLen)
	if _, err := io.CopyN(io.Discard, zr, prev.Offset-n); err != nil {
		return nil, false, nil // shorter than the position: not its copy
	}
	before := make([]byte, n)
	if _, err := io.ReadFull(zr, before); err != nil || mark(before) != prev.Mark {
		return nil, false, nil
	}
	rest, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, false, err
	}
	return rest, true, nil
}

// bytesPart is a part whose new lines are already read: the newest of
// them that fit the limit, whole lines only.
func bytesPart(name string, b []byte) part {
	return part{name, func(limit int64) ([]byte, bool, error) {
		cut := int64(len(b)) > limit
		if cut {
			b = fromLine(b[int64(len(b))-limit:])
		}
		return b[:bytes.LastIndexByte(b, '\n')+1], cut, nil
	}}
}
