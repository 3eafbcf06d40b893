// Package slacktest is a local server speaking the parts of Slack's Web API
// pglmon uses (chat.postMessage, chat.update, response_url, auth.test,
// apps.connections.open, usergroups.users.list), recording every
// request, and able to fail the way Slack does (429 with Retry-After, 500).
package slacktest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Request is one recorded call.
type Request struct {
	Method string // chat.postMessage, chat.update or response
	Form   url.Values
	Body   string
	Header http.Header
}

// Server is the fake Slack.
type Server struct {
	*httptest.Server
	mu       sync.Mutex
	requests []Request
	ts       int
	conn     *websocket.Conn
	connMu   sync.Mutex
	acks     []string
	// Groups are the user groups usergroups.users.list answers with.
	Groups map[string][]string
	// Fail, when set, answers instead of the normal reply (return 0 to answer normally).
	Fail func(method string) (status int, retryAfter int)
	// BotToken and AppToken, when set, are the only tokens auth.test and
	// apps.connections.open accept (else: invalid_auth).
	BotToken, AppToken string
}

// New starts a server; its API base URL is URL + "/api/".
func New() *Server {
	s := &Server{}
	s.Server = httptest.NewServer(http.HandlerFunc(s.handle))
	return s
}

// APIURL is the base URL for slack.api_url.
func (s *Server) APIURL() string { return s.URL + "/api/" }

// ResponseURL is where ephemeral answers are posted.
func (s *Server) ResponseURL() string { return s.URL + "/response" }

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/ws" {
		s.socket(w, r)
		return
	}
	b, _ := io.ReadAll(r.Body)
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	if r.URL.Path == "/response" {
		method = "response"
	}
	form, _ := url.ParseQuery(string(b))
	if s.Fail != nil && method != "response" {
		if status, after := s.Fail(method); status != 0 {
			if after > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(after))
			}
			w.WriteHeader(status)
			return
		}
	}
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: method, Form: form, Body: string(b), Header: r.Header.Clone()})
	s.ts++
	ts := fmt.Sprintf("1700000000.%06d", s.ts)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch method {
	case "chat.postMessage":
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": form.Get("channel"), "ts": ts})
	case "chat.update":
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": form.Get("channel"), "ts": form.Get("ts"), "text": form.Get("text")})
	case "auth.test":
		if s.BotToken != "" && token(r, form) != s.BotToken {
			json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "invalid_auth"})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "url": "https://pglmon-test.slack.com/", "team": "pglmon test", "user": "pglmon", "team_id": "T0TEST", "user_id": "U0PGLMON", "bot_id": "B0PGLMON"})
	case "apps.connections.open":
		if s.AppToken != "" && token(r, form) != s.AppToken {
			json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "invalid_auth"})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "url": "ws" + strings.TrimPrefix(s.URL, "http") + "/ws"})
	case "usergroups.users.list":
		s.mu.Lock()
		users, ok := s.Groups[form.Get("usergroup")]
		s.mu.Unlock()
		if !ok {
			json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "no_such_subteam"})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "users": users})
	default:
		json.NewEncoder(w).Encode(map[string]any{"ok": true})
	}
}

// token is the request's token: its Authorization bearer, else its form's token.
func token(r *http.Request, form url.Values) string {
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return t
	}
	return form.Get("token")
}

// Requests returns a copy of what was received.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Sign signs an interaction body the way Slack does (v0, HMAC-SHA256).
func Sign(secret, body string, at time.Time) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + ts + ":" + body))
	h := http.Header{}
	h.Set("X-Slack-Request-Timestamp", ts)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	return h
}

// ButtonPress is the form body Slack posts when user presses a button.
func ButtonPress(user, actionID, value, messageTS, actionTS, responseURL string) string {
	payload := map[string]any{
		"type":         "block_actions",
		"user":         map[string]any{"id": user},
		"container":    map[string]any{"type": "message", "message_ts": messageTS},
		"response_url": responseURL,
		"actions":      []map[string]any{{"action_id": actionID, "block_id": "pglmon_actions", "value": value, "action_ts": actionTS, "type": "button"}},
	}
	b, _ := json.Marshal(payload)
	return url.Values{"payload": {string(b)}}.Encode()
}

// upgrader accepts any Origin: Slack's clients send one, and this server is local to a test.
var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// socket is the Socket Mode websocket: hello, then envelopes pushed by
// SendInteractive; acknowledgements ({"envelope_id": ...}) are recorded.
func (s *Server) socket(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s.connMu.Lock()
	s.conn = c
	c.WriteJSON(map[string]any{"type": "hello", "num_connections": 1, "connection_info": map[string]any{"app_id": "A1"}})
	s.connMu.Unlock()
	for {
		var msg struct {
			EnvelopeID string `json:"envelope_id"`
		}
		if err := c.ReadJSON(&msg); err != nil {
			return
		}
		s.mu.Lock()
		s.acks = append(s.acks, msg.EnvelopeID)
		s.mu.Unlock()
	}
}

// Connected reports whether a Socket Mode client is connected.
func (s *Server) Connected() bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	return s.conn != nil
}

// SendInteractive pushes an interactive envelope carrying payload (JSON).
func (s *Server) SendInteractive(envelopeID, payload string) error {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.conn == nil {
		return fmt.Errorf("no socket mode client connected")
	}
	return s.conn.WriteJSON(map[string]any{"envelope_id": envelopeID, "type": "interactive",
		"payload": json.RawMessage(payload), "accepts_response_payload": false})
}

// Acked reports whether the envelope was acknowledged.
func (s *Server) Acked(envelopeID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.acks {
		if a == envelopeID {
			return true
		}
	}
	return false
}

// ButtonPayload is the JSON payload of a button press (Socket Mode carries it bare).
func ButtonPayload(user, actionID, value, messageTS, actionTS string) string {
	form, _ := url.ParseQuery(ButtonPress(user, actionID, value, messageTS, actionTS, ""))
	return form.Get("payload")
}
