package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mfn/mfn/coordinator/api"
)

func newCtlAuditCmd(env *cmdEnv, o *ctlOpts) *cobra.Command {
	c := &cobra.Command{
		Use:   "audit",
		Short: "Fetch checkpoints, proofs and the whole audit log (auditor)",
		Long: `audit fetches what an auditor checks offline with "mfn audit" (auditor role):

  checkpoint              the newest signed checkpoint note (for verify-log --since)
  bundle LEAF             the proof bundle of one leaf (for "mfn audit verify --bundle")
  consistency FROM TO     the consistency proof between two tree sizes, as JSON
  export --out DIR        the whole log in the layout "mfn audit verify-log DIR" checks

Nothing here is trusted: verify what you fetched with the log's public key.`,
		Example: `  mfn ctl audit checkpoint --out latest.note
  mfn ctl audit bundle 17 --out leaf17.json && mfn audit verify --bundle leaf17.json --log-key @log.vkey
  mfn ctl audit export --out ./auditlog && mfn audit verify-log ./auditlog --log-key @log.vkey`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var cpOut string
	checkpoint := &cobra.Command{
		Use:     "checkpoint",
		Short:   "Fetch the newest signed checkpoint",
		Long:    "checkpoint prints the newest signed checkpoint note verbatim, writes it to --out, or with --json prints its size, root and note.",
		Example: "  mfn ctl audit checkpoint --out latest.note",
		Args:    cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			cl, err := o.client()
			if err != nil {
				return err
			}
			if o.asJSON {
				cp, err := cl.Checkpoint(env.ctx)
				if err != nil {
					return ctlError(cl, err)
				}
				b, _ := json.MarshalIndent(cp, "", "  ")
				return writeOutput(env.stdout, cpOut, append(b, '\n'))
			}
			note, err := cl.CheckpointNote(env.ctx)
			if err != nil {
				return ctlError(cl, err)
			}
			return writeOutput(env.stdout, cpOut, note)
		},
	}
	checkpoint.Flags().StringVar(&cpOut, "out", "", "write to FILE instead of standard output")

	var bundleOut string
	bundle := &cobra.Command{
		Use:     "bundle LEAF",
		Short:   "Fetch the proof bundle of one audit leaf",
		Long:    `bundle fetches leaf LEAF's inclusion proof under the newest checkpoint as the JSON "mfn audit verify --bundle" reads.`,
		Example: "  mfn ctl audit bundle 17 --out leaf17.json",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			leaf, err := parseUint(args[0], "LEAF")
			if err != nil {
				return err
			}
			cl, err := o.client()
			if err != nil {
				return err
			}
			b, err := cl.BundleJSON(env.ctx, leaf)
			if err != nil {
				return ctlError(cl, err)
			}
			if !strings.HasSuffix(string(b), "\n") {
				b = append(b, '\n')
			}
			return writeOutput(env.stdout, bundleOut, b)
		},
	}
	bundle.Flags().StringVar(&bundleOut, "out", "", "write to FILE instead of standard output")

	var consOut string
	consistency := &cobra.Command{
		Use:     "consistency FROM TO",
		Short:   "Fetch the consistency proof between two tree sizes",
		Long:    "consistency fetches the RFC 6962 consistency proof from the tree of size FROM to the tree of size TO, as JSON {from, to, proof: [base64 hashes]}.",
		Example: "  mfn ctl audit consistency 100 250 --out proof.json",
		Args:    cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			from, err := parseUint(args[0], "FROM")
			if err != nil {
				return err
			}
			to, err := parseUint(args[1], "TO")
			if err != nil {
				return err
			}
			if from > to {
				return usagef("FROM %d is larger than TO %d", from, to)
			}
			cl, err := o.client()
			if err != nil {
				return err
			}
			p, err := cl.Consistency(env.ctx, from, to)
			if err != nil {
				return ctlError(cl, err)
			}
			b, _ := json.MarshalIndent(p, "", "  ")
			return writeOutput(env.stdout, consOut, append(b, '\n'))
		},
	}
	consistency.Flags().StringVar(&consOut, "out", "", "write to FILE instead of standard output")

	var exportOut string
	var waitCosigned time.Duration
	export := &cobra.Command{
		Use:   "export",
		Short: "Export the whole audit log for mfn audit verify-log",
		Long: `export writes every checkpoint (checkpoints/000001.note, …) and every leaf up
to the newest checkpoint's size (leaves/00000000.leaf, …) into --out, which
must not already hold a leaves or checkpoints folder, and the members'
cosigning keys as the server lists them (members.keys). While the newest
round results lack a majority of member cosignatures (they follow a
round's close by a moment) it exports again, for at most --wait-cosigned.
Check it with
"mfn audit verify-log DIR --log-key KEY" (add --member-keys FILE to check
the round results against keys you hold yourself).`,
		Example: "  mfn ctl audit export --out ./auditlog",
		Args:    cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if exportOut == "" {
				return usagef("--out is required: the directory to export the log to")
			}
			cl, err := o.client()
			if err != nil {
				return err
			}
			if waitCosigned < 0 {
				return usagef("--wait-cosigned %v: must be ≥ 0", waitCosigned)
			}
			rep, err := exportCosigned(env.ctx, cl, exportOut, waitCosigned)
			if err != nil {
				return ctlError(cl, err)
			}
			if o.asJSON {
				return printJSON(env.stdout, rep)
			}
			fmt.Fprintf(env.stdout, "exported %d leaves and %d checkpoints to %s\n", rep.Leaves, rep.Checkpoints, exportOut)
			if !rep.Complete {
				fmt.Fprintln(env.stderr, "note: the server served only its newest checkpoint; the export verifies, but shows no consistency between earlier checkpoints")
			}
			return nil
		},
	}
	export.Flags().StringVar(&exportOut, "out", "", "directory to write the log to (required)")
	export.Flags().DurationVar(&waitCosigned, "wait-cosigned", 10*time.Second, "export again, for at most this long, while the newest round results lack a majority of member cosignatures (they follow a round's close by a moment); 0 exports once")
	c.AddCommand(checkpoint, bundle, consistency, export)
	return c
}

func newCtlEventsCmd(env *cmdEnv, o *ctlOpts) *cobra.Command {
	var kinds []string
	var job string
	var count int
	c := &cobra.Command{
		Use:   "events",
		Short: "Follow the cluster's round and membership events",
		Long: `events streams the member's events (reader): rounds opened, updates accepted,
rounds closed or failed, checkpoints, node and member changes, leader changes.
It prints one JSON object per line with --json, a short line otherwise, until
interrupted or after --count events. --kind and --job filter on the server.
--timeout does not apply to the stream.`,
		Example: "  mfn ctl events --kind round_closed,round_failed --job j1\n  mfn ctl events --count 1 --json",
		Args:    cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if count < 0 {
				return usagef("--count %d: must be ≥ 0 (0 means until interrupted)", count)
			}
			if o.server == "" {
				return usagef("--server is required (or set MFN_SERVER): the URL of any coordinator member, e.g. http://127.0.0.1:8080")
			}
			cl, err := api.NewClient(o.server, o.apiKey, &http.Client{})
			if err != nil {
				return usagef("--server %q: %v", o.server, strings.TrimPrefix(err.Error(), "api: "))
			}
			stream, err := cl.Events(env.ctx, kinds, job)
			if err != nil {
				return ctlError(cl, err)
			}
			defer stream.Close()
			for n := 0; count == 0 || n < count; n++ {
				ev, err := stream.Next(env.ctx)
				if err != nil {
					if env.ctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("the event stream from %s ended: %v", cl.Server(), err)
				}
				if o.asJSON {
					b, _ := json.Marshal(ev)
					fmt.Fprintln(env.stdout, string(b))
					continue
				}
				line := fmtTime(ev.At) + " " + string(ev.Kind)
				for _, kv := range [][2]string{{"job", ev.Job}, {"node", ev.Node}, {"member", ev.Member}, {"detail", ev.Detail}} {
					if kv[1] != "" {
						line += " " + kv[0] + "=" + kv[1]
					}
				}
				if ev.Round != 0 {
					line += fmt.Sprintf(" round=%d", ev.Round)
				}
				fmt.Fprintln(env.stdout, line)
			}
			return nil
		},
	}
	c.Flags().StringSliceVar(&kinds, "kind", nil, "only these event kinds, e.g. round_closed,round_failed")
	c.Flags().StringVar(&job, "job", "", "only events of this job")
	c.Flags().IntVar(&count, "count", 0, "stop after this many events (0: until interrupted)")
	return c
}
