package api

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit configures the token buckets that limit each API key on each
// route: a bucket of Burst requests refilled at Rate per second.
type RateLimit struct {
	// Rate is the sustained requests per second per key and route; zero
	// means 20, a negative value disables rate limiting.
	Rate float64
	// Burst is the bucket's capacity; zero means 2 × Rate (at least 1).
	Burst int
	// MaxBuckets bounds the number of buckets kept; zero means 10,000.
	// When full, buckets idle long enough to have refilled are evicted
	// first (forgetting them changes nothing), then the least recently
	// used.
	MaxBuckets int
}

func (c RateLimit) withDefaults() RateLimit {
	if c.Rate == 0 {
		c.Rate = 20
	}
	if c.Burst == 0 {
		c.Burst = max(1, int(math.Ceil(2*c.Rate)))
	}
	if c.MaxBuckets == 0 {
		c.MaxBuckets = 10000
	}
	return c
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// limiter holds one token bucket per (key, route), bounded in number.
type limiter struct {
	cfg   RateLimit
	clock func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

func newLimiter(cfg RateLimit, clock func() time.Time) *limiter {
	return &limiter{cfg: cfg, clock: clock, buckets: map[string]*bucket{}}
}

// decision is the outcome of one take: whether the request may proceed,
// and the values of the rate limit headers.
type decision struct {
	ok         bool
	limit      int
	remaining  int
	reset      time.Duration // until the bucket is full again
	retryAfter time.Duration // until one token is available (when !ok)
}

// take spends one token of the bucket for key on route.
func (l *limiter) take(key, route string) decision {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	id := key + "\x00" + route
	b, ok := l.buckets[id]
	if !ok {
		if len(l.buckets) >= l.cfg.MaxBuckets {
			l.evictLocked(now)
		}
		b = &bucket{lim: rate.NewLimiter(rate.Limit(l.cfg.Rate), l.cfg.Burst)}
		l.buckets[id] = b
	}
	b.last = now
	d := decision{limit: l.cfg.Burst}
	r := b.lim.ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		d.retryAfter = delay
	} else {
		d.ok = true
	}
	tokens := b.lim.TokensAt(now)
	d.remaining = max(0, int(math.Floor(tokens)))
	d.reset = time.Duration((float64(l.cfg.Burst) - tokens) / l.cfg.Rate * float64(time.Second))
	return d
}

// evictLocked frees room: first every bucket idle for at least the time
// it takes to refill completely (it is full again, so dropping it is
// unobservable), and if that frees nothing, the least recently used one.
func (l *limiter) evictLocked(now time.Time) {
	refill := time.Duration(float64(l.cfg.Burst) / l.cfg.Rate * float64(time.Second))
	var oldestID string
	var oldest time.Time
	freed := false
	for id, b := range l.buckets {
		if now.Sub(b.last) >= refill {
			delete(l.buckets, id)
			freed = true
			continue
		}
		if oldestID == "" || b.last.Before(oldest) {
			oldestID, oldest = id, b.last
		}
	}
	if !freed && oldestID != "" {
		delete(l.buckets, oldestID)
	}
}

// size returns the number of buckets (for tests).
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// setHeaders writes the X-RateLimit-* headers (and Retry-After when the
// request is refused).
//
//	X-RateLimit-Limit      the bucket's capacity (burst)
//	X-RateLimit-Remaining  whole tokens left after this request
//	X-RateLimit-Reset      seconds until the bucket is full again
//	Retry-After            seconds until a request would be accepted
func (d decision) setHeaders(h http.Header) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(d.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(d.remaining))
	reset := 0
	if d.reset > 0 {
		reset = ceilSeconds(d.reset)
	}
	h.Set("X-RateLimit-Reset", strconv.Itoa(reset))
	if !d.ok {
		h.Set("Retry-After", strconv.Itoa(ceilSeconds(d.retryAfter)))
	}
}

// The rate limit classes of the keyed routes.
const (
	ClassReads   = "reads"   // GET routes other than the event stream
	ClassWrites  = "writes"  // routes served by the leader (changes)
	ClassCompute = "compute" // /v1/simulate, /v1/nernst
	ClassEvents  = "events"  // /v1/events (opening a stream)
)

// rateClass returns the rate limit class of a keyed route.
func rateClass(rt route) string {
	switch {
	case rt.pattern == "POST /v1/simulate" || rt.pattern == "POST /v1/nernst":
		return ClassCompute
	case rt.pattern == "GET /v1/events":
		return ClassEvents
	case rt.mode == write:
		return ClassWrites
	}
	return ClassReads
}
