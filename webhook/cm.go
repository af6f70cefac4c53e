package webhook

import "github.com/gorilla/mux"

func (h *Handler) registerCM(r *mux.Router) {}
