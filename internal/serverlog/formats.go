package serverlog

import (
	"encoding/csv"
	"encoding/json"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// The formats a server writes its log in (log_destination).
const (
	Stderr  = "stderr"  // text lines, each behind log_line_prefix
	CSVLog  = "csvlog"  // a CSV record per message (.csv)
	JSONLog = "jsonlog" // a JSON object per line (.json, PostgreSQL 15+)
)

// FormatOf is the format of a log file, by its name as the logging
// collector names them: .csv for csvlog, .json for jsonlog, else stderr.
func FormatOf(file string) string {
	switch path.Ext(file) {
	case ".csv":
		return CSVLog
	case ".json":
		return JSONLog
	}
	return Stderr
}

// AsLines returns the text of a log file in the given format as the lines
// this package reads: stderr's as they are; each csvlog or jsonlog record as
// the lines the server writes to stderr with log_line_prefix '%m [%p] ' (the
// message, then its DETAIL, HINT, CONTEXT and STATEMENT, a line break inside
// one followed by a tab). A record cut at the start of text (a tail read
// from inside it) or at its end (still being written), or unreadable, is
// left out.
func AsLines(format, text string) string {
	var b strings.Builder
	switch format {
	case CSVLog:
		csvRecords(text, func(r record) { r.write(&b) })
	case JSONLog:
		for line := range strings.SplitSeq(text, "\n") {
			if r, ok := jsonRecord(line); ok {
				r.write(&b)
			}
		}
	default:
		return text
	}
	return b.String()
}

// record is one message of a csvlog or jsonlog file.
type record struct {
	time, pid, severity                       string
	message, detail, hint, context, statement string
}

func (r record) write(b *strings.Builder) {
	prefix := r.time + " [" + r.pid + "] "
	for i, l := range []struct{ level, text string }{
		{r.severity, r.message}, {"DETAIL", r.detail}, {"HINT", r.hint}, {"CONTEXT", r.context}, {"STATEMENT", r.statement},
	} {
		if i > 0 && l.text == "" {
			continue
		}
		b.WriteString(prefix)
		b.WriteString(l.level)
		b.WriteString(":  ")
		b.WriteString(strings.ReplaceAll(strings.TrimRight(l.text, "\n"), "\n", "\n\t"))
		b.WriteByte('\n')
	}
}

// The columns of a csvlog record that pglmon reads (the same from
// PostgreSQL 9.0 on; later versions add columns at the end).
const (
	csvTime      = 0
	csvPID       = 3
	csvSeverity  = 11
	csvMessage   = 13
	csvDetail    = 14
	csvHint      = 15
	csvContext   = 18
	csvStatement = 19
	csvMinFields = 22
)

// csvRecords calls yield with each whole record of csvlog text. A record
// starts on a line that begins with its time and ends at the first line
// break outside quotes. Where text starts inside a record (a tail), the
// quotes cannot be told from the ends of quoted fields: a line that does
// not start a record that reads as one is skipped, and the next line that
// begins with a time is tried, until one does.
func csvRecords(text string, yield func(record)) {
	for i := 0; i < len(text); {
		if recordTimeRE.MatchString(text[i:min(len(text), i+32)]) {
			end, whole := csvRecordEnd(text, i)
			if r, ok := csvRecord(text[i:end]); ok && whole {
				yield(r)
				i = end
				continue
			}
		}
		j := strings.IndexByte(text[i:], '\n')
		if j < 0 {
			return // the last record, still being written or cut by the read
		}
		i += j + 1
	}
}

// recordTimeRE is the start of a csvlog record: its time, in any zone.
var recordTimeRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}`)

// csvRecordEnd returns where the record starting at i ends (after its line
// break), reading quotes as CSV does; whole is false when text ends first.
func csvRecordEnd(text string, i int) (end int, whole bool) {
	quoted := false
	for j := i; j < len(text); j++ {
		switch text[j] {
		case '"':
			quoted = !quoted // a doubled quote inside a field flips twice
		case '\n':
			if !quoted {
				return j + 1, true
			}
		}
	}
	return len(text), false
}

func csvRecord(line string) (record, bool) {
	f, err := csv.NewReader(strings.NewReader(line)).Read()
	if err != nil || len(f) < csvMinFields {
		return record{}, false
	}
	if _, err := strconv.Atoi(f[csvPID]); err != nil || !isSeverity(f[csvSeverity]) {
		return record{}, false
	}
	return record{time: f[csvTime], pid: f[csvPID], severity: f[csvSeverity], message: f[csvMessage],
		detail: f[csvDetail], hint: f[csvHint], context: f[csvContext], statement: f[csvStatement]}, true
}

// jsonRecord reads one line of a jsonlog file.
func jsonRecord(line string) (record, bool) {
	if !strings.HasPrefix(line, "{") {
		return record{}, false
	}
	var j struct {
		Timestamp string `json:"timestamp"`
		PID       int64  `json:"pid"`
		Severity  string `json:"error_severity"`
		Message   string `json:"message"`
		Detail    string `json:"detail"`
		Hint      string `json:"hint"`
		Context   string `json:"context"`
		Statement string `json:"statement"`
	}
	if json.Unmarshal([]byte(line), &j) != nil || !isSeverity(j.Severity) {
		return record{}, false
	}
	return record{time: j.Timestamp, pid: strconv.FormatInt(j.PID, 10), severity: j.Severity, message: j.Message,
		detail: j.Detail, hint: j.Hint, context: j.Context, statement: j.Statement}, true
}

// isSeverity reports whether s is a message severity as the server writes
// it in English.
func isSeverity(s string) bool {
	switch s {
	case "DEBUG", "DEBUG1", "DEBUG2", "DEBUG3", "DEBUG4", "DEBUG5", "LOG", "INFO", "NOTICE", "WARNING", "ERROR", "FATAL", "PANIC":
		return true
	}
	return false
}
