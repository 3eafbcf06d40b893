package slack

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/slack-go/slack"
)

// GroupLister reads the members of a user group (usergroups.users.list).
type GroupLister interface {
	GetUserGroupMembersContext(ctx context.Context, userGroup string, options ...slack.GetUserGroupMembersOption) ([]string, error)
}

// Groups approves the members of Slack user groups, refreshed at most every
// TTL; when Slack cannot be asked, the last known members still count.
type Groups struct {
	API    GroupLister
	IDs    []string
	TTL    time.Duration
	Log    *slog.Logger
	mu     sync.Mutex
	member map[string]bool
	at     time.Time
}

// Member reports whether user is in one of the groups.
func (g *Groups) Member(ctx context.Context, user string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.member == nil || time.Since(g.at) > g.TTL {
		fresh := map[string]bool{}
		ok := true
		for _, id := range g.IDs {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			users, err := g.API.GetUserGroupMembersContext(ctx, id)
			cancel()
			if err != nil {
				ok = false
				g.Log.Warn("read slack user group members", "group", id, "error", err.Error())
				break
			}
			for _, u := range users {
				fresh[u] = true
			}
		}
		if ok {
			g.member, g.at = fresh, time.Now()
		}
	}
	return g.member[user]
}

var _ GroupLister = (*slack.Client)(nil)
