package main

import (
	"context"

	"github.com/gorilla/mux"
)

// registerComponents mounts each component's routes. Each component gets
// exactly what it uses; they never import each other.
func (a *app) registerComponents(r *mux.Router) {
	// webhook (inbound), outbound (send API), media, web (agents) register here.
}

// workers are the background loops serve runs until shutdown.
func (a *app) workers() []func(context.Context) {
	var ws []func(context.Context)
	// media fetcher, outbox dispatcher, retention, scheduled backups.
	return ws
}
