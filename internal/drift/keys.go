package drift

import (
	"slices"

	"github.com/pglmon/pglmon/internal/diagnose"
)

// ReplicaKeySQL is the array of the columns of the key pglogical uses for
// the table c (a pg_class row, possibly NULL): its replica identity index
// (REPLICA IDENTITY USING INDEX), else its primary key; empty when neither
// (REPLICA IDENTITY FULL or NOTHING, or no primary key). The provider sends
// these columns of a row's old version with an update or delete; the
// subscriber finds the row to change by its own.
const ReplicaKeySQL = `coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i
		CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = c.oid AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))), '{}')`

// compareKeys says what pglogical's apply does when the subscriber finds
// rows by key sub and the provider's key is prov: "" when they are the
// same columns, else one of the diagnose.Key* effects. Measured with
// pglogical 2.4.2 (an insert, an update of a non-key column, an update of
// another column, a delete, on the provider):
//   - no key on the subscriber: the first update or delete stops the apply
//     ("could not find REPLICA IDENTITY index for table");
//   - a subscriber key with a column the provider's lacks: pglogical looks
//     the row up with the provider's values, the old key of a delete (its
//     other columns NULL) or the new row of an update, so every delete and
//     every update that changes such a column finds nothing and is skipped
//     (a conflict it logs: "tuple not found. Resolution: skip"), while the
//     subscription says replicating;
//   - a subscriber key with fewer of the provider's columns: applied, but
//     two rows the provider tells apart by the columns it leaves out are one
//     row on the subscriber (the second overwrites the first).
func compareKeys(prov, sub []string) string {
	switch {
	case len(prov) == 0 && len(sub) == 0:
		return "" // pglogical replicates such a table's inserts only
	case len(sub) == 0:
		return diagnose.KeyMissing
	}
	for _, c := range sub {
		if !slices.Contains(prov, c) {
			return diagnose.KeySkips
		}
	}
	if len(sub) < len(prov) {
		return diagnose.KeyMerges
	}
	return ""
}
