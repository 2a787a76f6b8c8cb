package main

import (
	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/learn"
)

// schemaModelFile applies a job's data schema to the model file "ctl
// models get --format model" writes: the schema's feature count when no
// --data gave one, and its standardisation: "job" puts the reference mean
// and std into the file (whatever --data says: every site scaled by
// them), "none" leaves the inputs unscaled, "site" (or none declared)
// keeps --data's own statistics.
func schemaModelFile(s *coordinator.DataSchema, inputs int, std *learn.Standardizer) (int, *learn.Standardizer) {
	if inputs == 0 {
		inputs = s.NumFeatures()
	}
	switch s.Standardize {
	case coordinator.SchemaStandardizeJob:
		std = &learn.Standardizer{Mean: s.Mean, Std: s.Std}
	case coordinator.SchemaStandardizeNone:
		std = nil
	}
	return inputs, std
}

// schemaScalesByJob reports whether the job's schema scales inputs by its
// reference statistics.
func schemaScalesByJob(s *coordinator.DataSchema) bool {
	return s != nil && s.Standardize == coordinator.SchemaStandardizeJob
}
