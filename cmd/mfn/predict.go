package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/sitedata"
)

func init() { registerCommand(newPredictCmd) }

const predictLong = `predict applies a trained model file to new data and prints one
prediction per row.

--model is a model file (format "mfn-model/1", documented at
learn.ModelFile): a JSON object with the model spec, its parameters, the class names, the
input feature names and the standardisation used in training, which
predict applies before the model sees the data.

--data is read like a site's training data (CSV, Parquet, .npy, .npz; see
"mfn node --data"), but needs no labels: the feature columns are the ones
the model file names (or --feature-columns, or every column but
--label-column), and a label column, if present, is ignored. A NaN, ∞,
empty or non-numeric value fails with its row and column unless
--drop-invalid skips such rows (their count goes to stderr).

The output is CSV on stdout, "row,prediction" with the class name, rows
numbered from 1 among the rows kept; --json prints a JSON array of
{"row", "prediction"} objects instead.`

const predictExample = `  mfn predict --model model.json --data new.csv
  mfn predict --model model.json --data new.parquet --json
  mfn predict --model model.json --data new.csv --drop-invalid > predictions.csv`

func newPredictCmd(env *cmdEnv) *cobra.Command {
	var (
		modelPath, dataPath, labelCol string
		featureCols                   []string
		dropInvalid, asJSON           bool
	)
	c := &cobra.Command{
		Use:     "predict --model FILE --data FILE",
		Short:   "Print a trained model's predictions for new data",
		Long:    predictLong,
		Example: predictExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modelPath == "" {
				return usagef("--model is required: a model file (mfn-model/1 JSON)")
			}
			if dataPath == "" {
				return usagef("--data is required: the CSV, Parquet, .npy or .npz file to predict")
			}
			if _, err := sitedata.DetectFormat(dataPath); err != nil {
				return usagef("--data %s: %v", dataPath, err)
			}
			f, err := os.Open(modelPath)
			if err != nil {
				return fmt.Errorf("--model: %w", err)
			}
			mf, err := learn.ReadModelFile(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("--model %s: %w", modelPath, err)
			}
			m, err := mf.Model()
			if err != nil {
				return fmt.Errorf("--model %s: %w", modelPath, err)
			}
			cols := featureCols
			if len(cols) == 0 {
				cols = mf.Features
			}
			l, err := sitedata.Load(dataPath, sitedata.Options{
				Schema:         sitedata.Schema{Features: mf.Dim},
				LabelColumn:    labelCol,
				FeatureColumns: cols,
				DropInvalid:    dropInvalid,
				Unlabelled:     true,
			})
			if err != nil {
				return err
			}
			if l.Dropped > 0 {
				fmt.Fprintf(env.stderr, "predict: dropped %d invalid rows\n", l.Dropped)
			}
			pred := mf.Predict(m, l.Data.X)
			if asJSON {
				type row struct {
					Row        int    `json:"row"`
					Prediction string `json:"prediction"`
				}
				out := make([]row, len(pred))
				for i, p := range pred {
					out[i] = row{i + 1, mf.Classes[p]}
				}
				enc := json.NewEncoder(env.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			w := csv.NewWriter(env.stdout)
			w.Write([]string{"row", "prediction"})
			for i, p := range pred {
				w.Write([]string{strconv.Itoa(i + 1), mf.Classes[p]})
			}
			w.Flush()
			return w.Error()
		},
	}
	fl := c.Flags()
	fl.StringVar(&modelPath, "model", "", "model file (mfn-model/1 JSON)")
	fl.StringVar(&dataPath, "data", "", "data to predict: .csv, .parquet, .npy or .npz")
	fl.StringVar(&labelCol, "label-column", sitedata.DefaultLabelColumn, "a label column to ignore if present")
	fl.StringSliceVar(&featureCols, "feature-columns", nil, "feature columns in model order (default: the model file's feature names, else all but the label column)")
	fl.BoolVar(&dropInvalid, "drop-invalid", false, "skip rows with NaN, ∞, empty or non-numeric values instead of failing")
	fl.BoolVar(&asJSON, "json", false, "print a JSON array instead of CSV")
	return c
}
