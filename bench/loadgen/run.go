package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	mode           string
	addr           string
	wait           int
	rate           float64
	total          int
	duration       time.Duration
	warmup         time.Duration
	reportInterval time.Duration
	connectRate    float64
	connectConc    int
	sourceIPs      int
	sequence       bool
	report         json.RawMessage
}

type gateway struct {
	index  int
	name   string
	tls    *tls.Config
	report json.RawMessage
	rnd    *mrand.Rand
	conn   *tls.Conn
	br     *bufio.Reader
	etag   string
}

type gatewayLine struct {
	Name   string          `json:"name"`
	Cert   string          `json:"cert"`
	Key    string          `json:"key"`
	Report json.RawMessage `json:"report"`
}

func pemOrFile(v string) ([]byte, error) {
	if strings.HasPrefix(strings.TrimSpace(v), "-----BEGIN") {
		return []byte(v), nil
	}
	return os.ReadFile(v)
}

// loadGateways reads the gateways file (JSON lines or one JSON array), keeping every shards-th
// gateway from shard on.
func loadGateways(path string, shard, shards int, pool *x509.CertPool, def json.RawMessage) ([]*gateway, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// streamed: every shard reads the whole file but keeps only its own gateways
	dec := json.NewDecoder(bytes.NewReader(data))
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '[' {
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	var out []*gateway
	for i := 0; dec.More(); i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if i%shards != shard {
			continue
		}
		var l gatewayLine
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, fmt.Errorf("%s: gateway %d: %w", path, i, err)
		}
		certPEM, err := pemOrFile(l.Cert)
		if err != nil {
			return nil, err
		}
		keyPEM, err := pemOrFile(l.Key)
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("gateway %s: %w", l.Name, err)
		}
		report := l.Report
		if len(report) == 0 {
			report = def
		}
		out = append(out, &gateway{
			index: i, name: l.Name, report: report, rnd: mrand.New(mrand.NewSource(int64(i) + 1)),
			tls: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair},
				ServerName: "localhost", MinVersion: tls.VersionTLS12},
		})
	}
	return out, nil
}

const defaultReport = `{"agentVersion": "bench-1", "models": [{"model": "detector", "version": "1.0.0",
 "digest": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "slot": "A",
 "state": "Active", "message": ""}], "health": [{"model": "detector", "version": "1.0.0",
 "window": "60s", "requests": 600, "errors": 1, "latencyP50Ms": 4.0, "latencyP95Ms": 11.0}]}`

// pacer hands out connection slots at most rate per second (0: no limit).
type pacer struct {
	mu   sync.Mutex
	next time.Time
	step time.Duration
}

func (p *pacer) wait() {
	if p.step == 0 {
		return
	}
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(p.step)
	p.mu.Unlock()
	time.Sleep(time.Until(at))
}

type runner struct {
	opt     options
	st      *stats
	pace    *pacer
	slots   chan struct{}
	opened  atomic.Int64
	failed  atomic.Int64
	tStart  time.Time
	tMeas   time.Time
	tEnd    time.Time
	started chan struct{}
}

var errEnded = errors.New("the schedule has ended")

func (r *runner) dial(g *gateway) error {
	ended := func() bool { return !r.tEnd.IsZero() && !time.Now().Before(r.tEnd) }
	if ended() {
		return errEnded
	}
	r.slots <- struct{}{}
	defer func() { <-r.slots }()
	if ended() {
		return errEnded // a reconnect still queued when the schedule ended
	}
	r.pace.wait()
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: -1}
	if r.opt.sourceIPs > 0 {
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+g.index%min(r.opt.sourceIPs, 250)))}
	}
	raw, err := d.Dial("tcp", r.opt.addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	c := tls.Client(raw, g.tls)
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	if err := c.Handshake(); err != nil {
		raw.Close()
		return fmt.Errorf("handshake: %w", err)
	}
	g.conn, g.br = c, bufio.NewReaderSize(c, 2048)
	// like an agent at start: one poll at once (not measured); its ETag makes later polls
	// conditional and it ends the server's handshake-to-first-request timeout
	status, err := g.roundTrip([]byte("GET /v1/desired HTTP/1.1\r\nHost: localhost\r\n\r\n"), 60*time.Second, nil)
	if err != nil {
		c.Close()
		return fmt.Errorf("first poll: %w", err)
	}
	if status != 200 {
		c.Close()
		return fmt.Errorf("first poll: HTTP %d", status)
	}
	return nil
}

// roundTrip writes req and reads one response; the ETag is kept, the body read into body.
func (g *gateway) roundTrip(req []byte, timeout time.Duration, body *[]byte) (int, error) {
	_ = g.conn.SetDeadline(time.Now().Add(timeout))
	if _, err := g.conn.Write(req); err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	resp, err := http.ReadResponse(g.br, nil)
	if err != nil {
		return 0, fmt.Errorf("read: %w", err)
	}
	if etag := resp.Header.Get("ETag"); etag != "" {
		g.etag = etag
	}
	if body != nil {
		*body, err = io.ReadAll(resp.Body)
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	if err != nil {
		return 0, fmt.Errorf("read body: %w", err)
	}
	if resp.Close {
		return resp.StatusCode, fmt.Errorf("server closed the connection (HTTP %d)", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed"
	case strings.Contains(err.Error(), "reset"):
		return "reset"
	case strings.HasPrefix(err.Error(), "server closed"):
		return "server_close"
	}
	return "other"
}

func (r *runner) request(g *gateway, path string, body []byte) []byte {
	var b strings.Builder
	if body == nil {
		b.WriteString("GET " + path + " HTTP/1.1\r\nHost: localhost\r\n")
		if g.etag != "" {
			b.WriteString("If-None-Match: " + g.etag + "\r\n")
		}
		b.WriteString("\r\n")
		return []byte(b.String())
	}
	b.WriteString("POST " + path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	return append([]byte(b.String()), body...)
}

func (r *runner) reportBody(g *gateway, session string, number int) []byte {
	if !r.opt.sequence {
		return g.report
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(g.report, &doc); err != nil {
		return g.report
	}
	seq, _ := json.Marshal(map[string]any{"session": session, "number": number})
	doc["sequence"] = seq
	out, _ := json.Marshal(doc)
	return out
}

func (r *runner) inWindow(t time.Time) bool { return !t.Before(r.tMeas) && t.Before(r.tEnd) }

// gatewayLoop: the schedule of one gateway after every connection is open.
func (r *runner) gatewayLoop(g *gateway) {
	<-r.started
	var sb [12]byte
	_, _ = rand.Read(sb[:])
	session := base64.RawURLEncoding.EncodeToString(sb[:])
	number := 1
	longpoll := r.opt.mode == "longpoll"
	hold := time.Duration(r.opt.wait) * time.Second
	period := time.Duration(float64(r.opt.total) / r.opt.rate * float64(time.Second))
	if longpoll {
		period = hold // the first long poll of each gateway spread over one hold
	}
	nextPoll := r.tStart.Add(time.Duration(g.rnd.Int63n(int64(period) + 1)))
	nextReport := r.tStart.Add(time.Duration(g.rnd.Int63n(int64(r.opt.reportInterval) + 1)))
	if longpoll {
		time.Sleep(time.Until(nextPoll))
	}
	for {
		isPoll := longpoll || !nextReport.Before(nextPoll)
		if longpoll && !time.Now().Before(nextReport) {
			isPoll = false
		}
		scheduled := nextPoll
		if !isPoll {
			scheduled = nextReport
		}
		if longpoll {
			scheduled = time.Now()
		}
		if !scheduled.Before(r.tEnd) {
			break
		}
		time.Sleep(time.Until(scheduled))
		if g.conn == nil {
			if err := r.dial(g); errors.Is(err, errEnded) {
				break
			} else if err != nil {
				r.st.fail("reconnect", err)
				time.Sleep(time.Second)
				continue
			}
			r.st.add(&r.st.reconnects, 1)
		}
		var req []byte
		timeout := 60 * time.Second
		var body []byte
		if isPoll {
			path := "/v1/desired"
			if longpoll {
				path += "?wait=" + strconv.Itoa(r.opt.wait)
				timeout += hold
			}
			req = r.request(g, path, nil)
			if !longpoll {
				nextPoll = nextPoll.Add(period)
			}
		} else {
			req = r.request(g, "/v1/report", r.reportBody(g, session, number))
			nextReport = nextReport.Add(r.opt.reportInterval)
		}
		sent := time.Now()
		var out *[]byte
		if !isPoll {
			out = &body
		}
		status, err := g.roundTrip(req, timeout, out)
		done := time.Now()
		kind := "poll"
		if !isPoll {
			kind = "report"
		}
		if err != nil {
			where := "before"
			if r.inWindow(done) {
				where = "window"
			} else if !done.Before(r.tEnd) {
				where = "after"
			}
			r.st.fail(kind+":"+errKind(err)+":"+where, err)
			g.conn.Close()
			g.conn = nil
			continue
		}
		if !isPoll && status == 200 {
			var answer struct {
				Written bool     `json:"written"`
				Reasons []string `json:"reasons"`
			}
			if json.Unmarshal(body, &answer) == nil && answer.Written {
				number++ // numbered like an agent: one higher after "written": true
				r.st.wrote(answer.Reasons, r.inWindow(done))
			}
		}
		if !r.inWindow(done) {
			continue
		}
		r.st.add(&r.st.completed, 1)
		r.st.code(kind + ":" + strconv.Itoa(status))
		switch {
		case !isPoll:
			r.st.observe("report", done.Sub(scheduledOr(sent, scheduled, longpoll)))
		case !longpoll:
			r.st.observe("poll", done.Sub(scheduled))
		case status == 304 && done.Sub(sent) >= hold-500*time.Millisecond:
			// held for the promised time: how late the answer came after it
			r.st.observe("longpoll_late", done.Sub(sent.Add(hold)))
		default: // answered early: the desired state changed (200) or the server let go
			r.st.add(&r.st.early, 1)
			if status == 200 {
				r.st.add(&r.st.changed, 1)
			}
			r.st.observe("longpoll_early", done.Sub(sent))
		}
	}
	if g.conn != nil {
		g.conn.Close()
	}
}

func scheduledOr(sent, scheduled time.Time, longpoll bool) time.Time {
	if longpoll {
		return sent // a report goes when the long poll before it is answered
	}
	return scheduled
}

func runMain(argv []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	gwFile := fs.String("gateways", "", "gateways file: JSON lines or array of {name, cert, key[, report]} (PEM inline or a path)")
	caFile := fs.String("ca", "", "the fleet CA certificate (verifies the fleet API)")
	reportFile := fs.String("report", "", "report body (JSON object) for gateways without one")
	shard := fs.Int("shard", 0, "this process's shard")
	shards := fs.Int("shards", 1, "shards: gateway i belongs to shard i %% shards")
	opt := options{}
	fs.StringVar(&opt.mode, "mode", "longpoll", "longpoll: hold GET /v1/desired?wait=N and ask again at once; poll: conditional polls on an open-loop schedule")
	fs.StringVar(&opt.addr, "addr", "127.0.0.1:8443", "fleet API host:port")
	fs.IntVar(&opt.wait, "wait", 30, "long-poll hold (s)")
	fs.Float64Var(&opt.rate, "rate", 0, "poll mode: offered polls/s across all shards (default gateways/30)")
	fs.IntVar(&opt.total, "total", 0, "gateways across all shards (default: this file's)")
	fs.DurationVar(&opt.duration, "duration", 60*time.Second, "measured time")
	fs.DurationVar(&opt.warmup, "warmup", 35*time.Second, "time before measuring")
	fs.DurationVar(&opt.reportInterval, "report-interval", 60*time.Second, "report every")
	fs.Float64Var(&opt.connectRate, "connect-rate", 500, "connections opened per second (0: no limit)")
	fs.IntVar(&opt.connectConc, "connect-concurrency", 64, "handshakes at once")
	fs.IntVar(&opt.sourceIPs, "source-ips", 0, "spread connections over this many loopback source addresses (127.0.0.2...; beyond ~28,000 connections to one port)")
	fs.BoolVar(&opt.sequence, "sequence", true, "numbered reports: {session, number}, +1 after \"written\": true")
	sync_ := fs.Bool("sync", false, "print a 'connected' line, then wait for 'start UNIX_SECONDS' on stdin")
	startAt := fs.Float64("start-at", 0, "unix time the schedule starts (default: once connected)")
	_ = fs.Parse(argv)
	if opt.mode != "longpoll" && opt.mode != "poll" {
		return fmt.Errorf("--mode must be longpoll or poll, got %q", opt.mode)
	}
	opt.report = json.RawMessage(defaultReport)
	if *reportFile != "" {
		data, err := os.ReadFile(*reportFile)
		if err != nil {
			return err
		}
		opt.report = data
	}
	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("%s: no certificate", *caFile)
	}
	gws, err := loadGateways(*gwFile, *shard, *shards, pool, opt.report)
	if err != nil {
		return err
	}
	if opt.total == 0 {
		opt.total = len(gws) * *shards
	}
	if opt.rate == 0 {
		opt.rate = float64(opt.total) / 30.0
	}
	r := &runner{opt: opt, st: newStats(), slots: make(chan struct{}, max(1, opt.connectConc)),
		pace: &pacer{}, started: make(chan struct{})}
	if opt.connectRate > 0 {
		r.pace.step = time.Duration(float64(time.Second) / opt.connectRate)
	}
	t0 := time.Now()
	stop := make(chan struct{})
	go func() { // progress on stderr
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				fmt.Fprintf(os.Stderr, "loadgen %d/%d: %d/%d connections open, %d failed, %.0fs\n",
					*shard, *shards, r.opened.Load(), len(gws), r.failed.Load(), time.Since(t0).Seconds())
			}
		}
	}()
	var wg sync.WaitGroup
	for _, g := range gws {
		wg.Add(1)
		go func(g *gateway) {
			defer wg.Done()
			if err := r.dial(g); err != nil {
				r.failed.Add(1)
				r.st.fail("connect", err)
				return
			}
			r.opened.Add(1)
		}(g)
	}
	wg.Wait()
	close(stop)
	connectS := time.Since(t0).Seconds()
	fmt.Fprintf(os.Stderr, "loadgen %d/%d: %d connections open in %.1fs, %d failed\n",
		*shard, *shards, r.opened.Load(), connectS, r.failed.Load())
	start := time.Now().Add(500 * time.Millisecond)
	if *sync_ {
		fmt.Printf("{\"event\": \"connected\", \"opened\": %d, \"failed\": %d, \"seconds\": %.3f}\n",
			r.opened.Load(), r.failed.Load(), connectS)
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil {
			return fmt.Errorf("waiting for start: %w", err)
		}
		at, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "start")), 64)
		if err != nil {
			return fmt.Errorf("bad start line %q", line)
		}
		*startAt = at
	}
	if *startAt > 0 {
		sec, frac := math.Modf(*startAt)
		start = time.Unix(int64(sec), int64(frac*1e9))
	}
	lateStart := math.Max(0, time.Since(start).Seconds())
	r.tStart, r.tMeas = start, start.Add(opt.warmup)
	r.tEnd = r.tMeas.Add(opt.duration)
	var run sync.WaitGroup
	for _, g := range gws {
		if g.conn == nil {
			continue
		}
		run.Add(1)
		go func(g *gateway) { defer run.Done(); r.gatewayLoop(g) }(g)
	}
	close(r.started)
	run.Wait()
	latency := map[string]any{}
	for k, h := range r.st.hist {
		latency[k] = h.summary()
	}
	summary := map[string]any{
		"event": "summary", "shard": *shard, "shards": *shards, "mode": opt.mode, "wait_s": opt.wait,
		"gateways": len(gws), "connected": r.opened.Load(), "connect_failed": r.failed.Load(),
		"connect_s": connectS, "start_late_s": lateStart, "duration_s": opt.duration.Seconds(),
		"codes": r.st.codes, "errors": r.st.errors, "first_errors": r.st.firstErrors,
		"latency": latency, "completed": r.st.completed, "early": r.st.early,
		"changed": r.st.changed, "reconnects": r.st.reconnects, "reports_written": r.st.written,
		"written_in_window": r.st.writtenInWindow, "write_reasons_in_window": r.st.reasons,
	}
	return json.NewEncoder(os.Stdout).Encode(summary)
}
