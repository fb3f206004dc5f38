package main

import (
	"math"
	"sort"
	"sync"
	"time"
)

// histogram of durations in log buckets 2 % wide (µs), mergeable across shards.
type histogram struct {
	counts map[int]int64
	n      int64
	max    time.Duration
}

const bucketBase = 1.02

func newHistogram() *histogram { return &histogram{counts: map[int]int64{}} }

func (h *histogram) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	us := float64(d.Microseconds())
	b := 0
	if us >= 1 {
		b = int(math.Log(us)/math.Log(bucketBase)) + 1
	}
	h.counts[b]++
	h.n++
	if d > h.max {
		h.max = d
	}
}

func bucketUpperMs(b int) float64 { return math.Pow(bucketBase, float64(b)) / 1000.0 }

func (h *histogram) quantile(q float64) float64 {
	if h.n == 0 {
		return math.NaN()
	}
	keys := make([]int, 0, len(h.counts))
	for k := range h.counts {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	rank := int64(math.Ceil(q * float64(h.n)))
	var seen int64
	for _, k := range keys {
		seen += h.counts[k]
		if seen >= rank {
			return math.Min(bucketUpperMs(k), float64(h.max.Microseconds())/1000.0)
		}
	}
	return float64(h.max.Microseconds()) / 1000.0
}

func (h *histogram) summary() map[string]any {
	buckets := make([][2]float64, 0, len(h.counts))
	for k, c := range h.counts {
		buckets = append(buckets, [2]float64{bucketUpperMs(k), float64(c)})
	}
	sort.Slice(buckets, func(i, j int) bool { return buckets[i][0] < buckets[j][0] })
	return map[string]any{
		"count": h.n, "p50_ms": nanNil(h.quantile(0.50)), "p90_ms": nanNil(h.quantile(0.90)),
		"p99_ms": nanNil(h.quantile(0.99)), "max_ms": float64(h.max.Microseconds()) / 1000.0,
		"buckets_ms": buckets,
	}
}

func nanNil(v float64) any {
	if math.IsNaN(v) {
		return nil
	}
	return v
}

// stats: everything a run measures; one mutex (a few thousand events per second).
type stats struct {
	mu          sync.Mutex
	hist        map[string]*histogram
	codes       map[string]int64
	errors      map[string]int64
	firstErrors map[string]string
	early       int64
	changed     int64
	completed   int64
	reconnects  int64
	written     int64
	// reports answered "written": true in the window, and why (the answer's reasons)
	writtenInWindow int64
	reasons         map[string]int64
}

func (s *stats) wrote(reasons []string, inWindow bool) {
	s.mu.Lock()
	s.written++
	if inWindow {
		s.writtenInWindow++
		for _, r := range reasons {
			s.reasons[r]++
		}
	}
	s.mu.Unlock()
}

func newStats() *stats {
	return &stats{hist: map[string]*histogram{}, codes: map[string]int64{},
		errors: map[string]int64{}, firstErrors: map[string]string{}, reasons: map[string]int64{}}
}

func (s *stats) observe(kind string, d time.Duration) {
	s.mu.Lock()
	h := s.hist[kind]
	if h == nil {
		h = newHistogram()
		s.hist[kind] = h
	}
	h.add(d)
	s.mu.Unlock()
}

func (s *stats) code(key string) {
	s.mu.Lock()
	s.codes[key]++
	s.mu.Unlock()
}

func (s *stats) fail(kind string, err error) {
	s.mu.Lock()
	s.errors[kind]++
	if _, ok := s.firstErrors[kind]; !ok && err != nil {
		s.firstErrors[kind] = err.Error()
	}
	s.mu.Unlock()
}

func (s *stats) add(field *int64, n int64) {
	s.mu.Lock()
	*field += n
	s.mu.Unlock()
}
