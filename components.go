package main

import (
	"context"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"imchannel/media"
	"imchannel/outbound"
	"imchannel/web"
	"imchannel/webhook"
)

// registerComponents mounts each component's routes. Each component gets
// exactly what it uses; they never import each other.
func (a *app) registerComponents(r *mux.Router) {
	a.registerOps(r) // first: DELETE /api/v1/customers/{number} beside web's /api/v1
	webhook.New(webhook.Deps{
		Store:            a.store,
		Log:              a.log,
		Metrics:          a.metrics,
		Creds:            a.inboundCreds(),
		BodyLimit:        a.cfg.Limits.BodyBytes,
		WelcomeText:      a.cfg.Welcome.Text,
		OutboundProvider: a.cfg.Provider.Kind,
	}).Register(r)
	media.NewServer(a.store, a.log, a.agentCreds()).Register(r)
	outbound.NewAPI(a.outboundDeps()).Register(r)
	agentsWeb := web.Must(web.New(web.Deps{
		Store:         a.store,
		Log:           a.log,
		Creds:         a.agentCreds(),
		LastBackup:    a.store.LastBackup,
		LastDownload:  a.store.LastDownload,
		Location:      a.location(),
		Relays:        a.relayStatus(),
		DefaultRegion: a.cfg.Numbers.DefaultRegion,
	}))
	agentsWeb.Register(r)
	// A browser that opens an unknown address gets the HTML error page,
	// everything else the JSON one.
	r.NotFoundHandler = http.HandlerFunc(agentsWeb.NotFound)
}

// location is web.timezone, which Validate has already checked.
func (a *app) location() *time.Location {
	loc, err := time.LoadLocation(a.cfg.Web.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// workers are the background loops serve runs until shutdown.
func (a *app) workers() []func(context.Context) {
	var ws []func(context.Context)
	ws = append(ws, media.NewFetcher(a.store, a.log, a.metrics, media.FromConfig(a.cfg)).Run)
	ws = append(ws, outbound.NewDispatcher(a.outboundDeps()).Run)
	if a.cfg.Retention.Days > 0 {
		ws = append(ws, a.retentionWorker)
	}
	ws = append(ws, a.relay.Run, a.eventsRetentionWorker)
	if a.cfg.Backup.Dir != "" {
		ws = append(ws, a.backupWorker)
	}
	return ws
}

func (a *app) outboundDeps() outbound.Deps {
	return outbound.Deps{Store: a.store, Log: a.log, Metrics: a.metrics, Config: a.cfg, HMACKey: a.key}
}
