package main

import (
	"context"
	"time"

	"imchannel/relay"
	"imchannel/store"
	"imchannel/web"
)

// newRelay builds the relay over the [[relay]] targets; with none it does
// nothing.
func (a *app) newRelay() *relay.Relay {
	return relay.New(relay.Deps{
		Store:       a.store,
		Log:         a.log,
		Metrics:     a.metrics,
		Targets:     a.cfg.Relay,
		PublicURL:   a.cfg.PublicURL,
		MessageJSON: web.MessageView,
	})
}

// relayStatus is what the status page shows of the relay (nil: no targets,
// no section).
func (a *app) relayStatus() func() []store.RelayStatus {
	if len(a.cfg.Relay) == 0 {
		return nil
	}
	return a.relay.Status
}

// eventsRetentionWorker purges events older than events.retention, at
// start and then hourly.
func (a *app) eventsRetentionWorker(ctx context.Context) {
	log := a.log.With("component", "events")
	for {
		cutoff := a.store.Now().Add(-a.cfg.Events.Retention.Duration)
		n, err := a.store.PurgeEvents(ctx, cutoff)
		if err != nil && ctx.Err() == nil {
			log.Error("events purge failed", "err", err, "removed", n)
		} else if n > 0 {
			log.Info("events purge", "cutoff", cutoff.UTC().Format(time.RFC3339), "removed", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retentionEvery):
		}
	}
}
