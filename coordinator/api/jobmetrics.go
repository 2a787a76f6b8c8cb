package api

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/mfn/mfn/coordinator"
)

// JobMetrics is the body of GET /v1/jobs/{id}/metrics: one page of the
// job's training curve, a point per round in increasing number.
// NextAfter is set when more rounds follow (pass it as after).
type JobMetrics struct {
	Job       string                     `json:"job"`
	Rounds    []coordinator.RoundMetrics `json:"rounds"`
	NextAfter *uint64                    `json:"next_after,omitempty"`
	// CrossSite are the nodes' signed evaluations of the final model of
	// a job with cross_site_eval (on the first page only; the member
	// must implement CrossSiteLister).
	CrossSite []coordinator.SiteEvaluation `json:"cross_site,omitempty"`
}

// CrossSiteLister is an optional ability of a Coordinator: the cross-site
// evaluation reports of a job (*coordinator.Coordinator has it).
type CrossSiteLister interface {
	CrossSite(job string) ([]coordinator.SiteEvaluation, error)
}

// Metrics curve paging (GET /v1/jobs/{id}/metrics?after=&limit=). A point
// is about 250 bytes of JSON, so a full page stays near 2.5 MB.
const (
	// DefaultMetricsPage is the page size without a limit parameter.
	DefaultMetricsPage = 1000
	// MaxMetricsPage is the largest limit accepted (400 beyond).
	MaxMetricsPage = 10000
)

// jobMetrics serves one page of a job's curve, paged like roundsList.
func (s *server) jobMetrics(w http.ResponseWriter, r *http.Request, _ []byte) error {
	after, limit, err := pageQuery(r, DefaultMetricsPage, MaxMetricsPage)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	rs, err := s.c.ListRounds(id)
	if err != nil {
		return err
	}
	slices.SortFunc(rs, func(a, b coordinator.Round) int { return cmp.Compare(a.Number, b.Number) })
	start, _ := slices.BinarySearchFunc(rs, after+1, func(rd coordinator.Round, n uint64) int { return cmp.Compare(rd.Number, n) })
	if after == math.MaxUint64 {
		start = len(rs)
	}
	page := rs[start:]
	out := JobMetrics{Job: id}
	if uint64(len(page)) > limit {
		page = page[:limit]
		next := page[len(page)-1].Number
		out.NextAfter = &next
	}
	out.Rounds = coordinator.Curve(page)
	if cl, ok := s.c.(CrossSiteLister); ok && after == 0 {
		if out.CrossSite, err = cl.CrossSite(id); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// JobMetrics returns a job's whole training curve, following the pages.
func (c *Client) JobMetrics(ctx context.Context, job string) (JobMetrics, error) {
	all := JobMetrics{Job: job, Rounds: []coordinator.RoundMetrics{}}
	var after uint64
	for {
		q := url.Values{}
		if after > 0 {
			q.Set("after", strconv.FormatUint(after, 10))
		}
		q.Set("limit", strconv.Itoa(MaxMetricsPage))
		var p JobMetrics
		if err := c.call(ctx, http.MethodGet, "/v1/jobs/"+esc(job)+"/metrics", q, nil, &p); err != nil {
			return JobMetrics{}, err
		}
		all.Rounds = append(all.Rounds, p.Rounds...)
		all.CrossSite = append(all.CrossSite, p.CrossSite...)
		if p.NextAfter == nil {
			return all, nil
		}
		if *p.NextAfter <= after {
			return JobMetrics{}, fmt.Errorf("api: metrics of %s: the server's next page (after %d) does not advance past %d", job, *p.NextAfter, after)
		}
		after = *p.NextAfter
	}
}
