// Package metrics defines imchannel's Prometheus collectors. One Metrics is
// made in main and handed to each component; nothing registers globally.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds every collector.
type Metrics struct {
	Registry *prometheus.Registry

	InboundPosts      *prometheus.CounterVec // provider
	InboundMessages   *prometheus.CounterVec // provider
	InboundDuplicates *prometheus.CounterVec // provider
	InboundReports    *prometheus.CounterVec // provider, status
	Rejections        *prometheus.CounterVec // route, reason
	Quarantined       *prometheus.CounterVec // provider

	OutboxDepth prometheus.Gauge
	Sends       *prometheus.CounterVec // provider, result (sent, retry, failed)
	Retries     *prometheus.CounterVec // what (send, media)

	MediaFetches    *prometheus.CounterVec // result (cached, failed, too_large, retry)
	MediaBytes      prometheus.Counter
	MediaFailures   prometheus.Counter
	CommitBatchSize prometheus.Histogram
	CommitDuration  prometheus.Histogram
	DBSize          prometheus.Gauge

	// Set at each scrape, for the alert rules in deploy/prometheus/.
	OutboxOldestAge prometheus.Gauge // seconds the longest-waiting outbound message has waited
	LastBackup      prometheus.Gauge // unix seconds of the last checked backup, 0: none
	LastDownload    prometheus.Gauge // unix seconds of the last whole /admin/backup download, 0: none
	BackupInterval  prometheus.Gauge // configured scheduled interval in seconds, 0: off
	Healthy         prometheus.Gauge // 1 when the database takes writes (the /healthz probe)

	HTTPDuration *prometheus.HistogramVec // route, method, code

	RelayDelivered   *prometheus.CounterVec // target
	RelayFailures    *prometheus.CounterVec // target, kind (retry, quarantined)
	RelayLagEvents   *prometheus.GaugeVec   // target
	RelayLagSeconds  *prometheus.GaugeVec   // target
	RelayLastSuccess *prometheus.GaugeVec   // target
	RelayQuarantined *prometheus.GaugeVec   // target
}

// New makes and registers the collectors on a fresh registry.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry:          r,
		InboundPosts:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imchannel_inbound_posts_total", Help: "Webhook posts accepted, by provider."}, []string{"provider"}),
		InboundMessages:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imchannel_inbound_messages_total", Help: "Inbound messages stored, by provider."}, []string{"provider"}),
		InboundDuplicates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imchannel_inbound_duplicates_total", Help: "Resent inbound messages recognised and not stored again, by provider."}, []string{"provider"}),
		InboundReports:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imchannel_inbound_reports_total", Help: "Delivery and seen reports received, by provider and status."}, []string{"provider", "status"}),
		Rejections:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imchannel_rejections_total", Help: "Requests refused, by route and reason."}, []string{"route", "reason"}),
		Quarantined:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imchannel_inbound_quarantined_total", Help: "Provider items that could not be understood, kept raw in the quarantine, by provider."}, []string{"provider"}),
		OutboxDepth:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "imchannel_outbox_depth", Help: "Outbound messages waiting for delivery."}),
		Sends:             prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imchannel_sends_total", Help: "Provider send attempts, by provider and result."}, []string{"provider", "result"}),
		Retries:           prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imchannel_retries_total", Help: "Retries scheduled, by what is retried."}, []string{"what"}),
		MediaFetches:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imchannel_media_fetches_total", Help: "Media fetch attempts, by result."}, []string{"result"}),
		MediaBytes:        prometheus.NewCounter(prometheus.CounterOpts{Name: "imchannel_media_bytes_total", Help: "Media bytes fetched and stored."}),
		MediaFailures:     prometheus.NewCounter(prometheus.CounterOpts{Name: "imchannel_media_failures_total", Help: "Media fetches that failed for good."}),
		CommitBatchSize:   prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imchannel_commit_batch_size", Help: "Writers sharing one fsynced commit.", Buckets: prometheus.ExponentialBuckets(1, 2, 11)}),
		CommitDuration:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imchannel_commit_duration_seconds", Help: "Time to commit and fsync one batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		DBSize:            prometheus.NewGauge(prometheus.GaugeOpts{Name: "imchannel_db_size_bytes", Help: "Size of the database file."}),
		OutboxOldestAge:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "imchannel_outbox_oldest_age_seconds", Help: "How long the longest-waiting outbound message has been due; 0 when none waits."}),
		LastBackup:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "imchannel_last_backup_timestamp_seconds", Help: "Unix time of the last backup written and checked (scheduled, or backup --url after its check); 0 when there was none."}),
		LastDownload:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "imchannel_last_download_timestamp_seconds", Help: "Unix time of the last whole GET /admin/backup stream, checked or not; 0 when there was none."}),
		BackupInterval:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "imchannel_backup_interval_seconds", Help: "The scheduled backup interval; 0 when scheduled backups are off."}),
		Healthy:           prometheus.NewGauge(prometheus.GaugeOpts{Name: "imchannel_healthy", Help: "1 when the database takes writes (the /healthz probe, run at each scrape), else 0."}),
		HTTPDuration:      prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "imchannel_http_request_duration_seconds", Help: "HTTP request latency by route.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"route", "method", "code"}),
		RelayDelivered:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imchannel_relay_delivered_total", Help: "Events a relay target acknowledged, by target."}, []string{"target"}),
		RelayFailures:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imchannel_relay_failures_total", Help: "Relay posts that failed (retry) and events a target refused (quarantined), by target."}, []string{"target", "kind"}),
		RelayLagEvents:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "imchannel_relay_lag_events", Help: "Events of the log after a relay target's cursor."}, []string{"target"}),
		RelayLagSeconds:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "imchannel_relay_lag_seconds", Help: "Age of the oldest event a relay target has not got yet (0: none)."}, []string{"target"}),
		RelayLastSuccess:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "imchannel_relay_last_success_timestamp_seconds", Help: "Unix time of a relay target's last acknowledged post (0: never)."}, []string{"target"}),
		RelayQuarantined:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "imchannel_relay_quarantined", Help: "Events a relay target refused with a 4xx, kept in quarantine."}, []string{"target"}),
	}
	r.MustRegister(m.InboundPosts, m.InboundMessages, m.InboundDuplicates, m.InboundReports, m.Rejections, m.Quarantined,
		m.OutboxDepth, m.Sends, m.Retries, m.MediaFetches, m.MediaBytes, m.MediaFailures,
		m.CommitBatchSize, m.CommitDuration, m.DBSize, m.HTTPDuration,
		m.OutboxOldestAge, m.LastBackup, m.LastDownload, m.BackupInterval, m.Healthy,
		m.RelayDelivered, m.RelayFailures, m.RelayLagEvents, m.RelayLagSeconds, m.RelayLastSuccess, m.RelayQuarantined,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
