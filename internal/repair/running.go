package repair

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"time"
)

// MarkRunning tells, among attempts without "finished" line, those still
// running from those pglmon stopped in the middle of: an attempt whose last
// line was written by a process of this host that still runs, and ran
// already then (not a later process given the same PID), is running
// (OutcomeRunning, with its PID). An attempt written on another host, or
// by a pglmon older than the PID in the log, stays interrupted: it cannot
// be told from here. Reason says which.
func MarkRunning(attempts []Attempt) {
	host, err := os.Hostname()
	if err != nil {
		return
	}
	for i := range attempts {
		a := &attempts[i]
		if a.Outcome != OutcomeInterrupted || a.last.pid <= 0 || a.last.host != host {
			continue
		}
		// The start time is in clock ticks, of 1/100 s on Linux.
		if started, ok := processStart(a.last.pid); ok && !started.After(a.last.at.Add(time.Second)) {
			a.Outcome, a.PID = OutcomeRunning, a.last.pid
			a.Reason = "running now: process " + strconv.Itoa(a.PID) + " of this host wrote its last line and still runs"
			continue
		}
		a.Reason = "pglmon stopped in the middle of it (process " + strconv.Itoa(a.last.pid) + " of this host, which wrote its last line, no longer runs)"
	}
}

// processStart is when process pid started, if it exists and is not a
// zombie (Linux /proc; elsewhere, not known).
func processStart(pid int) (time.Time, bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return time.Time{}, false
	}
	// pid (comm) state ppid ... starttime is the 22nd field; comm may hold
	// spaces and parentheses, so count from its last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return time.Time{}, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return time.Time{}, false
	}
	ticks, err := strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	boot, ok := bootTime()
	if !ok {
		return time.Time{}, false
	}
	return boot.Add(time.Duration(ticks) * 10 * time.Millisecond), true
}

// bootTime is the system's boot time (/proc/stat btime).
func bootTime() (time.Time, bool) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, false
	}
	for line := range strings.SplitSeq(string(stat), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return time.Unix(s, 0), err == nil
		}
	}
	return time.Time{}, false
}
