package main

import (
	"context"
	"time"
)

// scrapeOps sets the gauges the alert rules in deploy/prometheus/ need and
// no counter can give: how long the outbox's oldest message has waited,
// when the last backup was taken against the configured interval, and
// whether the database takes writes.
func (a *app) scrapeOps(ctx context.Context) {
	m := a.metrics
	now := a.store.Now()
	if oldest, err := a.store.OutboxOldest(now); err == nil {
		age := 0.0
		if !oldest.IsZero() {
			age = now.Sub(oldest).Seconds()
		}
		m.OutboxOldestAge.Set(age)
	}
	if at, _ := a.store.LastBackup(); !at.IsZero() {
		m.LastBackup.Set(float64(at.UnixNano()) / 1e9)
	}
	if at, _ := a.store.LastDownload(); !at.IsZero() {
		m.LastDownload.Set(float64(at.UnixNano()) / 1e9)
	}
	interval := 0.0
	if a.cfg.Backup.Dir != "" {
		interval = a.cfg.Backup.Interval.Seconds()
	}
	m.BackupInterval.Set(interval)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	healthy := 1.0
	if a.store.Health(ctx) != nil {
		healthy = 0
	}
	m.Healthy.Set(healthy)
}
