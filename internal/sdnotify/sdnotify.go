// Package sdnotify speaks systemd's notification protocol (sd_notify(3)):
// datagrams such as READY=1 sent to the socket named by $NOTIFY_SOCKET.
package sdnotify

import (
	"net"
	"os"
	"strconv"
	"time"
)

// States pglmon sends.
const (
	Ready     = "READY=1"
	Reloading = "RELOADING=1"
	Stopping  = "STOPPING=1"
	Watchdog  = "WATCHDOG=1"
)

// Notifier sends states to systemd; its zero value (no socket) does nothing.
type Notifier struct {
	socket string
}

// FromEnv returns a notifier for $NOTIFY_SOCKET (a no-op when unset).
func FromEnv() *Notifier { return &Notifier{socket: os.Getenv("NOTIFY_SOCKET")} }

// Enabled reports whether a socket is set.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// Notify sends one state line (or several, joined by newlines).
func (n *Notifier) Notify(state string) error {
	if !n.Enabled() {
		return nil
	}
	addr := &net.UnixAddr{Name: n.socket, Net: "unixgram"}
	if addr.Name[0] == '@' {
		addr.Name = "\x00" + addr.Name[1:] // abstract socket
	}
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}

// WatchdogInterval is how often to send WATCHDOG=1: half of $WATCHDOG_USEC,
// 0 when systemd expects none (or expects it from another process).
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// New returns a notifier for the socket at path ("" disables it).
func New(path string) *Notifier { return &Notifier{socket: path} }
