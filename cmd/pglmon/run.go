package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/pglmon/pglmon/internal/daemon"
	"github.com/pglmon/pglmon/internal/sdnotify"
)

func runDaemon(ctx context.Context, e env, args []string) error {
	fs := newFlags("run", e)
	path := fs.String("config", "", "configuration file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	logger := slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: level}))

	// SIGHUP reloads; the channel holds one pending reload at most.
	reload := make(chan struct{}, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case reload <- struct{}{}:
				default:
				}
			}
		}
	}()
	d, err := daemon.New(daemon.Options{
		ConfigPath: *path, Config: cfg, Logger: logger, Version: buildVersion(),
		Notifier: sdnotify.FromEnv(), Reload: reload, WatchdogInterval: sdnotify.WatchdogInterval(),
	})
	if err != nil {
		return err
	}
	return d.Run(ctx)
}
