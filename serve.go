package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"imchannel/config"
	"imchannel/hmackey"
	"imchannel/httpx"
	"imchannel/metrics"
	"imchannel/relay"
	"imchannel/store"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "serve [--config FILE]... [--addr HOST:PORT] [--db FILE]", stderr)
	var cfgPaths stringList
	fs.Var(&cfgPaths, "config", "TOML config file (default: embedded defaults); repeat it to lay an override file over the first, key by key")
	addr := fs.String("addr", "", "listen address, overrides the config's addr")
	db := fs.String("db", "", "database file, overrides the config's db")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", fs.Args())
	}
	cfg, err := config.Load(cfgPaths...)
	if err != nil {
		return err
	}
	if *addr != "" {
		cfg.Addr = *addr
	}
	if *db != "" {
		cfg.DB = *db
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := cfg.CheckExposure(); err != nil {
		return err
	}
	setMemoryLimits(cfg.Limits, os.Getenv)
	sink := newLogSink(stderr)
	defer sink.Flush()
	// The flusher outlives the signal: a long shutdown still writes out
	// the access lines of requests that finished meanwhile.
	flushCtx, stopFlush := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFlush()
	go sink.flushEvery(flushCtx, 100*time.Millisecond)
	log := slog.New(sink.handler(newLogger(cfg.Log, sink).Handler()))
	return serve(ctx, cfg, log)
}

// stringList is a flag that may be given more than once.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// setMemoryLimits applies [limits] memory_bytes as the Go runtime's soft
// memory limit and the collector's pace. The service allocates little that
// lives long, so GOGC=400 trades some memory for a quarter of the
// collector's work; the ceiling bounds that trade: near it the collector
// runs as often as it must, so a burst of large requests cannot grow the
// heap to five times what is live. GOGC and GOMEMLIMIT in the environment
// still win.
func setMemoryLimits(l config.Limits, getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if getenv("GOMEMLIMIT") == "" && l.MemoryBytes > 0 {
		debug.SetMemoryLimit(l.MemoryBytes)
	}
}

// logSink buffers the per-request access lines and writes them out every
// 100 ms: one write per request would put a syscall on the ingest hot path.
// Every other line (start, warnings, errors) is written at once. A crash
// loses at most the last 100 ms of access lines, never a data write.
type logSink struct {
	mu  sync.Mutex
	buf *bufio.Writer
}

func newLogSink(w io.Writer) *logSink { return &logSink{buf: bufio.NewWriterSize(w, 64<<10)} }

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// Flush writes out what is buffered.
func (s *logSink) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.buf.Flush()
}

func (s *logSink) flushEvery(ctx context.Context, d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Flush()
		}
	}
}

// handler wraps h so that every record but an access line is flushed at once.
func (s *logSink) handler(h slog.Handler) slog.Handler { return &flushHandler{Handler: h, sink: s} }

type flushHandler struct {
	slog.Handler
	sink *logSink
}

func (h *flushHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn || r.Message != accessLogMsg {
		h.sink.Flush()
	}
	return err
}

func (h *flushHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &flushHandler{Handler: h.Handler.WithAttrs(as), sink: h.sink}
}

func (h *flushHandler) WithGroup(name string) slog.Handler {
	return &flushHandler{Handler: h.Handler.WithGroup(name), sink: h.sink}
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// app holds what the HTTP handlers and workers share.
type app struct {
	cfg     config.Config
	log     *slog.Logger
	store   *store.Store
	metrics *metrics.Metrics
	// relay hands the events log on to the [[relay]] targets.
	relay *relay.Relay
	// key is the HMAC key (hmackey), read from its own file.
	key []byte
	// downloads are the recent whole /admin/backup streams, waiting for
	// `backup --url` to confirm it checked them.
	downloads *downloadLog
	// observers caches latency series by route, method and status.
	observers sync.Map
}

// newApp opens the store with the metrics wired in: what serve runs, and
// what in-process tests build their router from. The caller closes a.store.
func newApp(cfg config.Config, log *slog.Logger) (*app, error) {
	m := metrics.New()
	key, err := loadKey(cfg, log)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(cfg.DB, store.Options{
		HMACKey: key,
		Logger:  log,
		OnCommit: func(size int, d time.Duration) {
			m.CommitBatchSize.Observe(float64(size))
			m.CommitDuration.Observe(d.Seconds())
		},
	})
	if err != nil {
		return nil, err
	}
	// Series that exist from the first scrape, so an alert on their rate
	// sees the first send, retry or fetch instead of a series appearing.
	for _, result := range []string{"sent", "retry", "failed"} {
		m.Sends.WithLabelValues(cfg.Provider.Kind, result)
	}
	for _, what := range []string{"send", "media"} {
		m.Retries.WithLabelValues(what)
	}
	for _, result := range []string{store.MediaCached, store.MediaFailed, store.MediaTooLarge, "retry"} {
		m.MediaFetches.WithLabelValues(result)
	}
	a := &app{cfg: cfg, log: log, store: st, metrics: m, key: key, downloads: &downloadLog{}}
	a.relay = a.newRelay()
	return a, nil
}

// keyPath is where the HMAC key lives: key_file, else beside the database.
func keyPath(cfg config.Config) string {
	if cfg.KeyFile != "" {
		return cfg.KeyFile
	}
	return hmackey.DefaultPath(cfg.DB)
}

// loadKey reads the HMAC key, creating it at the first start.
func loadKey(cfg config.Config, log *slog.Logger) ([]byte, error) {
	p := keyPath(cfg)
	key, created, err := hmackey.LoadOrCreate(p)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("created the HMAC key; back it up with the config (docs/security.md)", "path", p)
	}
	return key, nil
}

func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	a, err := newApp(cfg, log)
	if err != nil {
		return err
	}
	st := a.store
	defer st.Close()
	a.logOpenMode()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           a.routes(),
		ReadHeaderTimeout: cfg.Limits.HeaderTimeout.Duration,
		ReadTimeout:       cfg.Limits.ReadTimeout.Duration,
		WriteTimeout:      cfg.Limits.WriteTimeout.Duration,
		IdleTimeout:       cfg.Limits.IdleTimeout.Duration,
		MaxHeaderBytes:    cfg.Limits.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	workCtx, stopWork := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, w := range a.workers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w(workCtx)
		}()
	}

	log.Info("listening", "addr", ln.Addr().String(), "db", cfg.DB, "version", Version)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		stopWork()
		wg.Wait()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests")
	shCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = srv.Shutdown(shCtx)
	if err != nil {
		// In-flight requests did not finish in time (a long backup
		// stream): cut them off before the store closes under them.
		_ = srv.Close()
	}
	stopWork()
	wg.Wait()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped cleanly")
	return nil
}

// logOpenMode says once, at start, that route groups are open.
func (a *app) logOpenMode() {
	if open := a.openGroups(); len(open) > 0 {
		a.log.Warn("open mode: route groups without credentials answer only requests to a loopback Host, and refuse writes from other origins",
			"groups", strings.Join(open, "; "))
	}
}

func (a *app) openGroups() []string {
	var open []string
	if !a.cfg.HasInboundAuth() {
		open = append(open, "inbound webhooks")
	}
	if !a.cfg.HasAPIAuth() {
		open = append(open, "send API")
	}
	if !a.cfg.HasAgents() {
		open = append(open, "agents (status page, /api/v1, /media, /admin, /metrics)")
	}
	return open
}

func (a *app) agentCreds() []httpx.Credential {
	out := make([]httpx.Credential, len(a.cfg.Agents))
	for i, ag := range a.cfg.Agents {
		out[i] = httpx.Credential{User: ag.User, Password: ag.Password}
	}
	return out
}

func (a *app) inboundCreds() []httpx.Credential {
	if !a.cfg.HasInboundAuth() {
		return nil
	}
	return []httpx.Credential{{User: a.cfg.Inbound.BasicUser, Password: a.cfg.Inbound.BasicPassword}}
}

// routes builds the whole router: every route of docs/api.md#routes.
func (a *app) routes() http.Handler {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(httpx.NotFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(httpx.MethodNotAllowed)
	agents := func(h http.Handler) http.Handler { return httpx.RequireBasic(a.agentCreds(), h) }

	r.HandleFunc("/healthz", a.healthz).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/metrics", agents(http.HandlerFunc(a.serveMetrics))).Methods(http.MethodGet)
	r.Handle("/admin/backup", agents(http.HandlerFunc(a.serveBackup))).Methods(http.MethodGet)
	r.Handle("/admin/backup/checked", httpx.LimitBody(httpx.SmallBody, agents(http.HandlerFunc(a.serveBackupChecked)))).Methods(http.MethodPost)

	a.registerComponents(r)

	return a.middleware(r)
}

func (a *app) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := a.store.Health(ctx); err != nil {
		httpx.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "database cannot take writes: " + err.Error()})
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *app) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if st, err := a.store.Stats(); err == nil {
		a.metrics.OutboxDepth.Set(float64(st.OutboxDepth))
	}
	a.relay.UpdateMetrics()
	// The file on disk, which is what fills the disk: bbolt grows it ahead
	// of the pages in use (in 16 MiB steps), so the transaction's size
	// would under-report it.
	if fi, err := os.Stat(a.cfg.DB); err == nil {
		a.metrics.DBSize.Set(float64(fi.Size()))
	}
	a.scrapeOps(r.Context())
	a.metrics.Handler().ServeHTTP(w, r)
}

// serveBackup streams a consistent copy of the database from one read
// transaction while ingest carries on (a bbolt reader never blocks the
// writer). The copy's size is known once that transaction starts, so it is
// sent as Content-Length and a client can tell a cut-off stream from a
// whole one.
func (a *app) serveBackup(w http.ResponseWriter, r *http.Request) {
	log := a.log.With("component", "backup")
	start := time.Now()
	id := a.store.NewID()
	dl := a.downloads.begin(id, start)
	var size, n int64
	err := a.store.View(func(tx *bolt.Tx) error {
		size = tx.Size()
		h := w.Header()
		h.Set(backupIDHeader, id)
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", `attachment; filename="imchannel-backup.db"`)
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Cache-Control", "no-store")
		dw := &deadlineWriter{w: w, rc: http.NewResponseController(w), idle: a.cfg.Limits.WriteTimeout.Duration}
		var err error
		// Paced, so copying from the page cache never takes a core from ingest.
		n, err = store.WriteBackup(tx, store.PacedWriter(r.Context(), dw, store.DefaultBackupRate))
		return err
	})
	if err != nil {
		dl.end(n, false)
		// The status is gone already; the client sees a short body.
		log.Warn("backup stream cut off", "err", err, "sent", n, "size", size)
		return
	}
	dl.end(size, true)
	// A whole stream is a download, not yet a backup: nobody is known to
	// have kept or checked it. `backup --url` confirms its checked file by
	// id (POST /admin/backup/checked), which records the backup.
	if err := a.store.RecordDownload(context.WithoutCancel(r.Context()), start, size); err != nil {
		log.Warn("could not record the download", "err", err)
	}
	log.Info("backup streamed", "bytes", size, "ms", time.Since(start).Milliseconds())
}

// deadlineWriter pushes the connection's write deadline forward while a
// long backup keeps making progress: the server's write_timeout then bounds
// a stalled client, not the size of the database.
type deadlineWriter struct {
	w    io.Writer
	rc   *http.ResponseController
	idle time.Duration
	last time.Time
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if d.idle > 0 {
		if now := time.Now(); now.Sub(d.last) > time.Second {
			_ = d.rc.SetWriteDeadline(now.Add(d.idle))
			d.last = now
		}
	}
	return d.w.Write(p)
}

// statusRecorder captures the status for the request log.
type statusRecorder struct {
	http.ResponseWriter
	route  string
	status int
	bytes  int64
	// hasBody: the request declares a body (or sends one chunked).
	hasBody bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	// A refusal (401 before the body is read, 403, 421, 413) closes the
	// connection: else the server drains up to 256 KiB of the unread body
	// before it answers, and a client holding its body back waits for the
	// refusal until read_timeout.
	if s.hasBody && code >= 400 {
		s.Header().Set("Connection", "close")
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Flush lets Server-Sent Events through the recorder.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// accessLogMsg is the message of the one line logged per request.
const accessLogMsg = "request"

// middleware logs one line per request (never credentials or bodies),
// records latency by route template and turns a panic into a 500. The
// route template is filled in by a mux middleware once mux has matched, so
// each request is routed only once.
func (a *app) middleware(r *mux.Router) http.Handler {
	log := a.log.With("component", "http")
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if rec, ok := w.(*statusRecorder); ok {
				if rt := mux.CurrentRoute(req); rt != nil {
					if t, err := rt.GetPathTemplate(); err == nil {
						rec.route = t
					}
				}
			}
			next.ServeHTTP(w, req)
		})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, route: "unmatched", hasBody: req.ContentLength != 0}
		defer func() {
			if p := recover(); p != nil {
				log.Error("panic serving request", "route", rec.route, "panic", fmt.Sprint(p))
				if rec.status == 0 {
					httpx.WriteJSON(rec, http.StatusInternalServerError, map[string]string{"error": "internal error"})
				}
			}
			d := time.Since(start)
			a.observer(rec.route, req.Method, rec.status).Observe(d.Seconds())
			log.LogAttrs(req.Context(), slog.LevelInfo, accessLogMsg, slog.String("method", req.Method),
				slog.String("route", rec.route), slog.Int("status", rec.status),
				slog.Float64("ms", float64(d.Microseconds())/1000), slog.Int64("bytes", rec.bytes),
				slog.String("remote", remoteHost(req.RemoteAddr)))
		}()
		if httpx.NoBody(rec, req) {
			return
		}
		r.ServeHTTP(rec, req)
	})
}

// observerKey names one latency histogram series.
type observerKey struct {
	route, method string
	status        int
}

// observer returns the latency series for a request, looked up once per
// series rather than by label values on every request.
func (a *app) observer(route, method string, status int) prometheus.Observer {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions:
	default:
		method = "other" // a client's made-up method must not mint series
	}
	k := observerKey{route, method, status}
	if o, ok := a.observers.Load(k); ok {
		return o.(prometheus.Observer)
	}
	o := a.metrics.HTTPDuration.WithLabelValues(route, method, strconv.Itoa(status))
	a.observers.Store(k, o)
	return o
}

func remoteHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return strings.ReplaceAll(addr, "\n", "")
}
