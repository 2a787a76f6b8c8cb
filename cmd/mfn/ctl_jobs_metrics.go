package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// newCtlJobsMetricsCmd returns `jobs metrics`: a job's training curve.
func newCtlJobsMetricsCmd(env *cmdEnv, o *ctlOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "metrics JOB",
		Short: "Print a job's training curve: per-round losses and accuracies (reader)",
		Long: `metrics prints one line per round of JOB: its state, the updates received,
used and rejected by the rule, and the round's metrics:

  TRAIN_LOSS    mean cross-entropy of the nodes' trained models on their own
                training data, signed in each update and averaged over the
                used updates weighted by training samples;
  HOLDOUT_ACC   accuracy of the nodes' trained models on their held-out split
                (mfn node --holdout), weighted by held-out samples;
  EVAL_ACC      accuracy of the round's new global model on the coordinators'
  EVAL_LOSS     evaluation data (mfn coordinator --eval-data), when it fits
                the job.

"-" marks a value the round does not have. For a job created with
--cross-site-eval, a second table lists each site's signed evaluation of
the final model on its held-out data (and their sample-weighted mean).
--json prints the API's JobMetrics (GET /v1/jobs/{id}/metrics, every
page).`,
		Example: "  mfn ctl jobs metrics j1\n  mfn ctl jobs metrics j1 --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cl, err := o.client()
			if err != nil {
				return err
			}
			m, err := cl.JobMetrics(env.ctx, args[0])
			if err != nil {
				return ctlError(cl, err)
			}
			if o.asJSON {
				return printJSON(env.stdout, m)
			}
			tw := table(env.stdout)
			fmt.Fprintln(tw, "ROUND\tSTATE\tUPDATES\tUSED\tREJECTED\tTRAIN_LOSS\tHOLDOUT_ACC\tEVAL_ACC\tEVAL_LOSS")
			for _, p := range m.Rounds {
				fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", p.Round, p.State, p.Updates, p.Used, p.Rejected,
					fmtMetric(p.TrainLoss), fmtMetric(p.HoldoutAccuracy), fmtMetric(p.EvalAccuracy), fmtMetric(p.EvalLoss))
			}
			if err := tw.Flush(); err != nil || len(m.CrossSite) == 0 {
				return err
			}
			fmt.Fprintf(env.stdout, "\ncross-site evaluation of the final model (v%d), %d sites:\n", m.CrossSite[0].ModelVersion, len(m.CrossSite))
			tw = table(env.stdout)
			fmt.Fprintln(tw, "SITE\tACCURACY\tLOSS\tSAMPLES")
			var sum, n float64
			for _, s := range m.CrossSite {
				fmt.Fprintf(tw, "%s\t%.4f\t%.4f\t%d\n", s.Node, s.Accuracy, s.Loss, s.Samples)
				sum, n = sum+s.Accuracy*float64(s.Samples), n+float64(s.Samples)
			}
			fmt.Fprintf(tw, "(weighted)\t%.4f\t\t%d\n", sum/n, int64(n))
			return tw.Flush()
		},
	}
}

// fmtMetric prints a metric with four decimals, "-" when absent.
func fmtMetric(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.4f", *p)
}
