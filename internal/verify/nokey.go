package verify

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// ScanRows is how checksum mode reads a table without a primary key: in
// page order, its rows named by their contents.
const ScanRows = "rows"

// maxRowText is how much of a row's text names it in a report.
const maxRowText = 200

// rowsInPages reports whether a table without a primary key can be compared
// by its rows' contents: both servers run PostgreSQL 14+ (TID range scans)
// and it is a plain table on both; and returns what each said of it.
func (c *Comparer) rowsInPages(ctx context.Context, t Table) (bool, [2]relInfo) {
	info, err := c.relInfo(ctx, t)
	if err != nil {
		return false, info // counted, which reports any error of its own
	}
	for _, ri := range info {
		if ri.version < 140000 || ri.kind != "r" {
			return false, info
		}
	}
	return true, info
}

// checksumRows compares a table without a primary key (pglogical replicates
// only INSERT and TRUNCATE for one) by the contents of its rows, copies
// counted: each server sums its rows, in page order, into buckets by the
// row hash, and the buckets whose sums differ are narrowed as a text key's
// are (narrowBuckets). The rows of the buckets still differing are then
// read and settled (settleRowsInPages): a row is named by its text, with
// "#n" for its n-th copy. With differences all over the table, only the
// first differing buckets holding at most 4 x chunk_rows rows are compared
// row by row, and the note says how many rows were left out.
func (c *Comparer) checksumRows(ctx context.Context, t Table, r *TableResult, info [2]relInfo) error {
	n, err := c.narrowBuckets(ctx, t, r, info, t.rowHash(), true)
	if err != nil || n.filter == "" {
		return err
	}
	diffs, unsettled, err := c.settleRowsInPages(ctx, t, info, n.filter)
	if err != nil {
		return fmt.Errorf("compare the rows of %d differing row-hash buckets of %s: %w", n.buckets, t.QualifiedName(), err)
	}
	c.unsettled += unsettled
	c.addDiffs(r, diffs)
	r.RowsCompared += n.rows
	if n.skipped > 0 {
		r.Note = fmt.Sprintf("rows differ all over the table: %d rows in differing row-hash buckets were not compared row by row (differing_rows counts only the rows that were)", n.skipped)
	}
	return nil
}

// rowText is a row's replicated columns as the text of a row, each cast to
// the provider's type (as rowHash does): what names a row without a key.
func (t Table) rowText() string {
	cols := quoteAll(t.Columns)
	for i, c := range cols {
		if i < len(t.ColumnTypes) && t.ColumnTypes[i] != "" {
			cols[i] = c + "::" + t.ColumnTypes[i]
		}
	}
	return "ROW(" + strings.Join(cols, ", ") + ")::text"
}

// settleRowsInPages reads the rows filter selects on the provider (page
// order), then its WAL insert position (every change that read saw is at or
// before it), waits until the subscriber applied that, reads the rows there
// and, unless they are the same, on the provider again. A row (one copy of
// it) the subscriber holds and the provider does not, or the reverse,
// differs when both provider reads agree on it; rows whose copies changed
// between them are read again, up to Retries times in all, and then counted
// as unsettled.
func (c *Comparer) settleRowsInPages(ctx context.Context, t Table, info [2]relInfo, filter string) ([]rowDiff, int64, error) {
	read := func(conn *pgx.Conn, provider bool, ri relInfo, filter string) ([]leafRow, error) {
		copies := map[string]int{}
		var out []leafRow
		err := c.pageRanges(ctx, conn, provider, t, ri, true, func(where string) (int64, error) {
			rows, err := conn.Query(ctx, "SELECT "+t.rowText()+", "+t.rowHash()+" FROM "+t.ident()+" WHERE "+where+" AND "+filter)
			if err != nil {
				return 0, err
			}
			defer rows.Close()
			var text string
			var h int64
			var n int64
			for rows.Next() {
				if err := rows.Scan(&text, &h); err != nil {
					return 0, err
				}
				copies[text]++
				nth := ""
				if k := copies[text]; k > 1 {
					nth = fmt.Sprintf(" #%d", k)
				}
				// The key is the whole text; vals its text and copy, to print.
				out = append(out, leafRow{key: text + nth, vals: []string{text, nth}, hash: h})
				n++
			}
			return n, rows.Err()
		})
		return out, err
	}
	var diffs []rowDiff
	found := map[string]bool{}
	var unstable int64
	for range c.Opt.Retries {
		p1, err := read(c.Provider, true, info[0], filter)
		if err != nil {
			return nil, 0, err
		}
		var lsn string
		if err := c.Provider.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
			return nil, 0, err
		}
		if err := c.waitApplied(ctx, lsn); err != nil {
			return nil, 0, err
		}
		s, err := read(c.Subscriber, false, info[1], filter)
		if err != nil {
			return nil, 0, err
		}
		differ := diffLeaves(p1, s)
		if len(differ) == 0 {
			// The subscriber holds what the provider did: nothing to confirm.
			unstable = 0
			break
		}
		p2, err := read(c.Provider, true, info[0], filter)
		if err != nil {
			return nil, 0, err
		}
		stable := stableRows(p1, p2)
		var again []int
		unstable = 0
		for _, d := range differ {
			switch {
			case !stable(d.Key):
				unstable++
				again = append(again, int(d.hash))
			case !found[d.Key]:
				found[d.Key] = true
				diffs = append(diffs, d)
			}
		}
		if unstable == 0 {
			break
		}
		// Read again only the rows that changed (rows written meanwhile
		// elsewhere in the buckets would keep changing them).
		filter += " AND " + t.rowHash() + " = ANY(" + intArray(again) + ")"
	}
	for i, d := range diffs {
		diffs[i].Key = shortRow(d.vals[0]) + d.vals[1]
	}
	return diffs, unstable, nil
}

// shortRow cuts a row's text to maxRowText characters.
func shortRow(text string) string {
	if utf8.RuneCountInString(text) <= maxRowText {
		return text
	}
	return string([]rune(text)[:maxRowText]) + "..."
}
