package slack

import (
	"context"
	"log/slog"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/pglmon/pglmon/internal/config"
)

// RunSocket receives interactions over Socket Mode (no inbound port: pglmon
// dials out with the app-level token) and hands them to h, acknowledging
// each envelope first. It reconnects with backoff until ctx ends.
func RunSocket(ctx context.Context, cfg config.Slack, botToken, appToken config.Secret, h *Interactions, log *slog.Logger) {
	api := slack.New(botToken.Reveal(), slack.OptionAPIURL(cfg.APIURL), slack.OptionAppLevelToken(appToken.Reveal()))
	wait := time.Second
	for ctx.Err() == nil {
		client := socketmode.New(api)
		connCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-connCtx.Done():
					return
				case evt := <-client.Events:
					switch evt.Type {
					case socketmode.EventTypeInteractive:
						cb, ok := evt.Data.(slack.InteractionCallback)
						if evt.Request != nil {
							if err := client.AckCtx(connCtx, evt.Request.EnvelopeID, nil); err != nil {
								log.Warn("slack socket mode: ack failed", "error", err.Error())
							}
						}
						if ok {
							h.Handle(cb)
						}
					case socketmode.EventTypeConnected:
						log.Info("slack socket mode connected")
						wait = time.Second
					case socketmode.EventTypeConnectionError, socketmode.EventTypeInvalidAuth:
						detail := ""
						if ce, ok := evt.Data.(*slack.ConnectionErrorEvent); ok && ce.ErrorObj != nil {
							detail = ce.ErrorObj.Error()
						}
						log.Warn("slack socket mode: connection problem", "event", string(evt.Type), "error", detail)
					}
				}
			}
		}()
		err := client.RunContext(connCtx)
		cancel()
		<-done
		if ctx.Err() != nil {
			return
		}
		// RunContext returns only with an error.
		log.Warn("slack socket mode disconnected; reconnecting", "error", err.Error(), "in", wait.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Minute)
	}
}
