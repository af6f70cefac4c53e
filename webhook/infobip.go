package webhook

import "github.com/gorilla/mux"

func (h *Handler) registerInfobip(r *mux.Router) {}
