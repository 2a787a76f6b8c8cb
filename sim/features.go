package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// NumFeatures is the number of features extracted from a field history.
const NumFeatures = 18

// FeatureNames lists the features in their fixed order; Features[i] is the
// value of FeatureNames[i].
var FeatureNames = [NumFeatures]string{
	"D_box", "D_r2", "V_min", "V_max", "V_mean", "V_std", "V_skew", "V_kurt",
	"dV_mean", "dV_max", "T_stable", "E_trend", "f_active",
	"N_clusters_low", "N_clusters_med", "N_clusters_high",
	"max_cluster_size", "cluster_size_std",
}

// Indices of the features in Features, in FeatureNames order.
const (
	FDBox = iota
	FDR2
	FVMin
	FVMax
	FVMean
	FVStd
	FVSkew
	FVKurt
	FDVMean
	FDVMax
	FTStable
	FETrend
	FFActive
	FClustersLow
	FClustersMed
	FClustersHigh
	FMaxClusterSize
	FClusterSizeStd
)

// Features holds the 18 features in FeatureNames order. Potentials are in
// millivolts.
type Features [NumFeatures]float64

// Map returns the features keyed by name.
func (f Features) Map() map[string]float64 {
	m := make(map[string]float64, NumFeatures)
	for i, name := range FeatureNames {
		m[name] = f[i]
	}
	return m
}

// MarshalJSON encodes the features as one JSON object whose keys are
// exactly FeatureNames, in order. Non-finite values cannot occur in
// features extracted by this package; if present they are an error.
func (f Features) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, name := range FeatureNames {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(name))
		b.WriteByte(':')
		v, err := json.Marshal(f[i])
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON decodes an object keyed by feature names. Every name must be
// present; unknown keys are an error.
func (f *Features) UnmarshalJSON(data []byte) error {
	var m map[string]float64
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	var out Features
	for i, name := range FeatureNames {
		v, ok := m[name]
		if !ok {
			return errors.New("features: missing key " + strconv.Quote(name))
		}
		out[i] = v
	}
	if len(m) != NumFeatures {
		return errors.New("features: unknown keys in object")
	}
	*f = out
	return nil
}
