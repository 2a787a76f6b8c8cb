package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
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
	// Classes overrides Rate and Burst for the routes of a class
	// (ClassReads, ClassWrites, ClassCompute, ClassEvents; rateClass
	// says which routes are in which). A class not listed takes Rate and
	// Burst. Each (key, route) bucket still counts on its own; the class
	// only chooses its rate and capacity.
	Classes map[string]ClassRate
	// MaxBuckets bounds the number of buckets kept; zero means 10,000.
	// When full, buckets idle long enough to have refilled are evicted
	// first (forgetting them changes nothing), then the least recently
	// used.
	MaxBuckets int
}

// ClassRate is the token bucket of one route class.
type ClassRate struct {
	// Rate is the sustained requests per second per key and route; a
	// negative value turns the class's limit off. Zero is invalid.
	Rate float64
	// Burst is the bucket's capacity; zero means 2 × Rate (at least 1).
	Burst int
}

// RateClasses are the rate limit classes, in the order documents list
// them.
var RateClasses = []string{ClassReads, ClassWrites, ClassCompute, ClassEvents}

// validate names the first bad field.
func (c RateLimit) validate() error {
	if c.Burst < 0 || c.MaxBuckets < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		return errors.New("api: Config.RateLimit.Rate must be finite, Burst and MaxBuckets ≥ 0")
	}
	for name, cr := range c.Classes {
		if !slices.Contains(RateClasses, name) {
			return fmt.Errorf("api: Config.RateLimit.Classes: unknown class %q (want %s)", name, strings.Join(RateClasses, ", "))
		}
		if cr.Rate == 0 || math.IsNaN(cr.Rate) || math.IsInf(cr.Rate, 0) || cr.Burst < 0 {
			return fmt.Errorf("api: Config.RateLimit.Classes[%q]: rate %v must be finite and non-zero (negative: off), burst %d ≥ 0", name, cr.Rate, cr.Burst)
		}
	}
	return nil
}

// ParseRateClasses parses "class=rate:burst,…" (the burst optional:
// "compute=2"; rate 0 turns the class's limit off), as
// "mfn coordinator --http-rates" takes it. Errors name the bad item and
// wrap ErrBadRates.
func ParseRateClasses(s string) (map[string]ClassRate, error) {
	out := map[string]ClassRate{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		name, val, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("%w: %q: want class=rate:burst", ErrBadRates, clip(item))
		}
		name = strings.TrimSpace(name)
		if !slices.Contains(RateClasses, name) {
			return nil, fmt.Errorf("%w: unknown class %q (want %s)", ErrBadRates, clip(name), strings.Join(RateClasses, ", "))
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%w: class %s given twice", ErrBadRates, name)
		}
		rs, bs, hasBurst := strings.Cut(val, ":")
		rate, err := strconv.ParseFloat(strings.TrimSpace(rs), 64)
		if err != nil || rate < 0 || rate > 1e6 || math.IsNaN(rate) {
			return nil, fmt.Errorf("%w: %s: rate %q must be a number in [0, 1e6] (0: no limit)", ErrBadRates, name, clip(rs))
		}
		cr := ClassRate{Rate: rate}
		if rate == 0 {
			cr.Rate = -1
		}
		if hasBurst {
			b, err := strconv.Atoi(strings.TrimSpace(bs))
			if err != nil || b < 1 || b > 1e6 {
				return nil, fmt.Errorf("%w: %s: burst %q must be an integer in [1, 1000000]", ErrBadRates, name, clip(bs))
			}
			cr.Burst = b
		}
		out[name] = cr
	}
	return out, nil
}

// ErrBadRates is wrapped by ParseRateClasses' errors.
var ErrBadRates = errors.New("api: bad rate classes")

// FormatRateClasses is the inverse of ParseRateClasses, classes sorted.
func FormatRateClasses(m map[string]ClassRate) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		r := m[n].Rate
		if r < 0 {
			r = 0
		}
		parts[i] = fmt.Sprintf("%s=%g:%d", n, r, m[n].Burst)
	}
	return strings.Join(parts, ",")
}

// class returns the rate and burst of a class (with defaults), and false
// when the class is not limited.
func (c RateLimit) class(name string) (ClassRate, bool) {
	cr, ok := c.Classes[name]
	if !ok {
		cr = ClassRate{Rate: c.Rate, Burst: c.Burst}
	}
	if cr.Rate <= 0 {
		return cr, false
	}
	if cr.Burst == 0 {
		cr.Burst = max(1, int(math.Ceil(2*cr.Rate)))
	}
	return cr, true
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
	cr   ClassRate
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

// take spends one token of the bucket for key on route, whose rate and
// capacity are cr.
func (l *limiter) take(key, route string, cr ClassRate) decision {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	id := key + "\x00" + route
	b, ok := l.buckets[id]
	if !ok {
		if len(l.buckets) >= l.cfg.MaxBuckets {
			l.evictLocked(now)
		}
		b = &bucket{lim: rate.NewLimiter(rate.Limit(cr.Rate), cr.Burst), cr: cr}
		l.buckets[id] = b
	}
	b.last = now
	d := decision{limit: b.cr.Burst}
	r := b.lim.ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		d.retryAfter = delay
	} else {
		d.ok = true
	}
	tokens := b.lim.TokensAt(now)
	d.remaining = max(0, int(math.Floor(tokens)))
	d.reset = time.Duration((float64(b.cr.Burst) - tokens) / b.cr.Rate * float64(time.Second))
	return d
}

// evictLocked frees room: first every bucket idle for at least the time
// it takes to refill completely (it is full again, so dropping it is
// unobservable), and if that frees nothing, the least recently used one.
func (l *limiter) evictLocked(now time.Time) {
	var oldestID string
	var oldest time.Time
	freed := false
	for id, b := range l.buckets {
		if now.Sub(b.last) >= time.Duration(float64(b.cr.Burst)/b.cr.Rate*float64(time.Second)) {
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
