package main

import (
	"context"
	"log/slog"
	"time"
)

// retentionEvery is how often the retention purge runs.
const retentionEvery = time.Hour

// retentionWorker purges messages older than [retention] days, at start
// and then hourly.
func (a *app) retentionWorker(ctx context.Context) {
	log := a.log.With("component", "retention")
	for {
		a.purgeOnce(ctx, log)
		select {
		case <-ctx.Done():
			return
		case <-time.After(retentionEvery):
		}
	}
}

func (a *app) purgeOnce(ctx context.Context, log *slog.Logger) {
	cutoff := a.store.Now().Add(-time.Duration(a.cfg.Retention.Days) * 24 * time.Hour)
	start := time.Now()
	res, err := a.store.PurgeBefore(ctx, cutoff)
	if err != nil {
		if ctx.Err() == nil {
			log.Error("retention purge failed", "err", err, "removed", res.Messages)
		}
		return
	}
	if res.Messages > 0 || res.Pending > 0 || res.Quarantine > 0 {
		log.Info("retention purge", "cutoff", cutoff.UTC().Format(time.RFC3339), "messages", res.Messages,
			"pending", res.Pending, "quarantine", res.Quarantine, "ms", time.Since(start).Milliseconds())
	}
	// Hosted media a crash left without its message (older files; new ones
	// are stored with it in one transaction).
	if n, err := a.store.ReclaimOrphanMedia(ctx); err != nil {
		if ctx.Err() == nil {
			log.Error("reclaiming orphaned media failed", "err", err)
		}
	} else if n > 0 {
		log.Info("reclaimed orphaned media", "media", n)
	}
}
