package main

import (
	"testing"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/learn"
)

func TestSchemaModelFile(t *testing.T) {
	t.Parallel()
	site := &learn.Standardizer{Mean: []float64{1, 2}, Std: []float64{3, 4}}
	job := &coordinator.DataSchema{Features: 2, Standardize: "job", Mean: []float64{5, 6}, Std: []float64{7, 8}}
	if n, std := schemaModelFile(job, 0, site); n != 2 || std == nil || std.Mean[0] != 5 || std.Std[1] != 8 || !schemaScalesByJob(job) {
		t.Fatalf("job scaling: %d %+v", n, std)
	}
	if n, std := schemaModelFile(&coordinator.DataSchema{InputShape: []int{28, 28}, Standardize: "none"}, 0, site); n != 784 || std != nil {
		t.Fatalf("no scaling: %d %+v", n, std)
	}
	if n, std := schemaModelFile(&coordinator.DataSchema{Standardize: "site"}, 4, site); n != 4 || std != site || schemaScalesByJob(nil) {
		t.Fatalf("site scaling: %d %+v", n, std)
	}
}
