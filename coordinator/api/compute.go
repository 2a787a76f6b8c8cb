package api

import (
	"errors"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/mfn/mfn/sim"
)

// simConfig applies the request's fields over sim.DefaultConfig.
func (req *SimulateRequest) simConfig() (sim.Config, error) {
	c := sim.DefaultConfig()
	setInt := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	setF := func(dst *float64, v *float64) {
		if v != nil {
			*dst = *v
		}
	}
	setB := func(dst *bool, v *bool) {
		if v != nil {
			*dst = *v
		}
	}
	setInt(&c.GridSize, req.GridSize)
	setInt(&c.Steps, req.Steps)
	setF(&c.Alpha, req.Alpha)
	setF(&c.SpikeProbability, req.SpikeProbability)
	setB(&c.TuringEnabled, req.TuringEnabled)
	setF(&c.TuringThreshold, req.TuringThreshold)
	setB(&c.QuantumJitter, req.QuantumJitter)
	setF(&c.JitterVar, req.JitterVar)
	setF(&c.Da, req.Da)
	setF(&c.Di, req.Di)
	setF(&c.Ra, req.Ra)
	setF(&c.Ri, req.Ri)
	if req.Seed != nil {
		c.Seed = *req.Seed
	}
	if req.Boundary != nil {
		b, err := sim.ParseBoundary(*req.Boundary)
		if err != nil {
			return c, err
		}
		c.Boundary = b
	}
	return c, c.Validate()
}

// simulateRoute runs one bounded MFN field simulation.
func (s *server) simulateRoute(w http.ResponseWriter, r *http.Request, body []byte) error {
	var req SimulateRequest
	if err := decodeBody(body, &req); err != nil {
		return err
	}
	cfg, err := req.simConfig()
	if err != nil {
		return err
	}
	if cells := int64(cfg.GridSize) * int64(cfg.GridSize) * int64(cfg.Steps); cells > s.cfg.Compute.MaxCellSteps {
		return errorf(http.StatusBadRequest, CodeInvalid,
			"grid_size² × steps = %d is above this server's limit of %d: use a smaller grid_size or fewer steps",
			cells, s.cfg.Compute.MaxCellSteps)
	}
	key := infoFrom(r.Context()).ident.Name
	if err := s.sims.acquire(key); err != nil {
		return err
	}
	defer s.sims.release(key)
	res, err := s.simulate(r.Context(), cfg)
	if err != nil {
		var ue *sim.UnstableError
		if errors.As(err, &ue) {
			return errorf(http.StatusUnprocessableEntity, CodeInvalid, "%v", err)
		}
		if r.Context().Err() != nil {
			return errorf(http.StatusServiceUnavailable, CodeUnavailable, "simulation cancelled: %v", r.Context().Err())
		}
		return err
	}
	s.simStats.observe(res)
	out := SimulateResponse{
		GridSize: res.N, Steps: res.Steps,
		Features:      make(map[string]float64, sim.NumFeatures),
		FeatureVector: make([]float64, sim.NumFeatures),
		Metrics: SimulateMetrics{GrowthEvents: res.Metrics.GrowthEvents, TuringActivations: res.Metrics.TuringActivations,
			ClampedCells: res.Metrics.ClampedCells},
		Lyapunov: res.Lyapunov,
	}
	for i, name := range sim.FeatureNames {
		out.Features[name] = res.Features[i]
		out.FeatureVector[i] = res.Features[i]
	}
	lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
	for _, v := range res.Field {
		lo, hi, sum = math.Min(lo, v), math.Max(hi, v), sum+v
	}
	if len(res.Field) > 0 {
		out.FieldMinMV, out.FieldMaxMV, out.FieldMeanMV = lo*1000, hi*1000, sum/float64(len(res.Field))*1000
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// nernst computes an equilibrium potential with sim.Nernst.
func (s *server) nernst(w http.ResponseWriter, _ *http.Request, body []byte) error {
	var req NernstRequest
	if err := decodeBody(body, &req); err != nil {
		return err
	}
	switch {
	case req.Z == nil:
		return errorf(http.StatusBadRequest, CodeInvalid, "z is required (−2, −1, 1 or 2)")
	case req.COut == nil:
		return errorf(http.StatusBadRequest, CodeInvalid, "c_out is required (mol/L)")
	case req.CIn == nil:
		return errorf(http.StatusBadRequest, CodeInvalid, "c_in is required (mol/L)")
	}
	t := 310.0
	if req.Temperature != nil {
		t = *req.Temperature
	}
	if *req.COut < 0 || *req.CIn < 0 {
		return errorf(http.StatusBadRequest, CodeInvalid, "c_out and c_in must be ≥ 0 mol/L")
	}
	e, err := sim.Nernst(*req.Z, *req.COut, *req.CIn, t)
	if err != nil {
		return errorf(http.StatusBadRequest, CodeInvalid, "%v", err)
	}
	if math.IsInf(e, 0) || math.IsNaN(e) {
		// Finite inputs whose ratio overflows: c_in is clamped up to
		// sim.MinConcentrationM, so only a huge c_out can make c_out/c_in
		// leave the float64 range (the smallest ratio is a subnormal,
		// whose logarithm is finite).
		return errorf(http.StatusUnprocessableEntity, CodeInvalid,
			"c_out: %g mol/L over c_in %g mol/L overflows the concentration ratio; no finite potential exists",
			*req.COut, *req.CIn)
	}
	writeJSON(w, http.StatusOK, NernstResponse{PotentialMV: e * 1000, PotentialV: e})
	return nil
}

// simSlots shares the simulation slots between API keys: at most total
// at once, at most perKeyMax of them held by one key.
type simSlots struct {
	total, perKeyMax int

	mu     sync.Mutex
	used   int
	perKey map[string]int
}

func (s *simSlots) acquire(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var e *httpError
	switch {
	case s.perKey[key] >= s.perKeyMax:
		e = errorf(http.StatusServiceUnavailable, CodeUnavailable,
			"key %q already runs %d simulations on this member (its share of %d); retry when one ends", key, s.perKeyMax, s.total)
	case s.used >= s.total:
		e = errorf(http.StatusServiceUnavailable, CodeUnavailable, "%d simulations are running; retry later", s.total)
	default:
		s.used++
		s.perKey[key]++
		return nil
	}
	e.retryAfter = time.Second
	return e
}

func (s *simSlots) release(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used--
	if s.perKey[key]--; s.perKey[key] <= 0 {
		delete(s.perKey, key)
	}
}
