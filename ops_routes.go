package main

import (
	"context"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"imchannel/httpx"
	"imchannel/store"
)

// registerOps mounts the operations routes that are not in serve.go's
// fixed list.
func (a *app) registerOps(r *mux.Router) {
	agents := func(h http.HandlerFunc) http.Handler { return httpx.RequireBasic(a.agentCreds(), h) }
	r.Handle("/api/v1/customers/{number}", agents(a.eraseCustomer)).Methods(http.MethodDelete)
}

// eraseCustomer is DELETE /api/v1/customers/{number}: every message, media
// blob and index entry of one customer number (any format), across every
// business number, with an audit line. The erasure runs to its end even if
// the client goes away, so it is never left half done by a dropped
// connection. The number itself is never logged.
func (a *app) eraseCustomer(w http.ResponseWriter, r *http.Request) {
	number := mux.Vars(r)["number"]
	if store.NormalizeNumber(number) == "" {
		httpx.WriteError(w, r, a.log, httpx.Errorf(store.ErrInvalid, "customer number %q has no digits", number))
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Minute)
	defer cancel()
	n, err := a.store.EraseNumber(ctx, number)
	if err != nil {
		httpx.WriteError(w, r, a.log, err)
		return
	}
	a.log.Info("customer erased", "component", "erase", "numberHmac", a.store.NumberHMAC(number), "messages", n)
	httpx.WriteJSON(w, http.StatusOK, map[string]int{"erased": n})
}
