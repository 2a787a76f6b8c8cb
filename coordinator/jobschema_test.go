package coordinator

import (
	"errors"
	"math"
	"net/url"
	"strings"
	"testing"

	"github.com/mfn/mfn/protocol"
)

func TestDataSchemaValidate(t *testing.T) {
	t.Parallel()
	spec := func(d *DataSchema) JobSpec {
		s := testSpec("s1", 76, 1, 1)
		s.Shape = []int{18, 4}
		s.Schema = d
		return s
	}
	good := &DataSchema{Features: 18, Classes: []string{"quiet", "noisy", "mild", "neumann"}, Standardize: "job",
		Mean: make([]float64, 18), Std: make([]float64, 18)}
	for i := range good.Std {
		good.Std[i] = 1
	}
	if err := spec(good).Validate(); err != nil {
		t.Fatal(err)
	}
	if err := spec(nil).Validate(); err != nil {
		t.Fatal(err)
	}
	long := make([]string, 40)
	for i := range long {
		long[i] = strings.Repeat(string(rune('a'+i%26)), 30) + string(rune('A'+i/26))
	}
	cases := map[string]func(d *DataSchema){
		"negative features":    func(d *DataSchema) { d.Features = -1 },
		"shape product":        func(d *DataSchema) { d.InputShape = []int{3, 5} },
		"one class":            func(d *DataSchema) { d.Classes = []string{"a"} },
		"repeated class":       func(d *DataSchema) { d.Classes = []string{"a", "b", "a", "c"} },
		"empty class":          func(d *DataSchema) { d.Classes = []string{"a", "", "b", "c"} },
		"long class":           func(d *DataSchema) { d.Classes[0] = strings.Repeat("x", MaxSchemaClassLen+1) },
		"too many classes":     func(d *DataSchema) { d.Classes = make([]string, MaxSchemaClasses+1) },
		"announcement too big": func(d *DataSchema) { d.Classes = long },
		"bad standardize":      func(d *DataSchema) { d.Standardize = "global" },
		"short mean":           func(d *DataSchema) { d.Mean = d.Mean[:3] },
		"zero std":             func(d *DataSchema) { d.Std[2] = 0 },
		"nan mean":             func(d *DataSchema) { d.Mean[2] = math.NaN() },
		"stats without job":    func(d *DataSchema) { d.Standardize = "site" },
		"features vs shape":    func(d *DataSchema) { d.Features = 17; d.Mean, d.Std = d.Mean[:17], d.Std[:17] },
		"classes vs outputs":   func(d *DataSchema) { d.Classes = d.Classes[:3] },
	}
	for name, mutate := range cases {
		d := *good
		d.Classes = append([]string(nil), good.Classes...)
		d.Mean = append([]float64(nil), good.Mean...)
		d.Std = append([]float64(nil), good.Std...)
		mutate(&d)
		err := spec(&d).Validate()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "schema.") {
			t.Errorf("%s: err = %v, want ErrInvalid naming schema.<field>", name, err)
		}
	}
}

func TestDataSchemaEncode(t *testing.T) {
	t.Parallel()
	var nilSchema *DataSchema
	if nilSchema.Encode() != "" {
		t.Fatal("nil schema encodes")
	}
	d := &DataSchema{InputShape: []int{28, 28}, Classes: []string{"T-shirt/top", "a,b", "x&y=z"}, Standardize: "job",
		Mean: make([]float64, 784), Std: make([]float64, 784)}
	for i := range d.Std {
		d.Std[i] = 0.5
	}
	enc := d.Encode()
	v, err := url.ParseQuery(enc)
	if err != nil {
		t.Fatal(err)
	}
	if v.Get("features") != "784" || v.Get("shape") != "28x28" || v.Get("standardize") != "job" || len(v.Get("stats")) != 64 {
		t.Fatalf("encoded %q", enc)
	}
	if got := v["class"]; len(got) != 3 || got[0] != "T-shirt/top" || got[1] != "a,b" || got[2] != "x&y=z" {
		t.Fatalf("classes %q", got)
	}
	// The stats hash changes with any value.
	h := protocol.StatsHash(d.Mean, d.Std)
	d.Std[783] = 0.25
	if protocol.StatsHash(d.Mean, d.Std) == h {
		t.Fatal("stats hash ignores std")
	}
}

func TestAnnouncementCarriesSchema(t *testing.T) {
	t.Parallel()
	d := &DataSchema{Features: 4, Classes: []string{"a", "b"}}
	md := AnnouncementMetadata(Announcement{Job: "j", Task: "t", Dim: 10, Schema: d.Encode()})
	if md["schema"] != d.Encode() || md["schema"] == "" {
		t.Fatalf("metadata %v", md)
	}
	if _, ok := AnnouncementMetadata(Announcement{Job: "j", Task: "t", Dim: 10})["schema"]; ok {
		t.Fatal("schema metadata without a schema")
	}
}
