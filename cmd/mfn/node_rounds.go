package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/coordinator/api"
	"github.com/mfn/mfn/node"
)

const nodeRoundsLong = `rounds shows, for every round a node took part in (its acknowledgements in
--state-dir), what the cluster did with its update: used by the rule,
rejected (with the rule's reason and score), not given to the rule, or
missing from the round's result. Nothing the server says is taken on
trust: for each round the node's own update leaf and the round's result
leaf are fetched as proof bundles and checked offline against a checkpoint
signed by the audit log key (--log-key), the first must be this node's
update (--id, the recorded update hash), the second the result of the same
job and round; with --member-keys a majority of the coordinator members
must also have cosigned that checkpoint.

Outcomes: used, rejected, not-input, missing (the signed result omits an
update the cluster acknowledged: report it), no-result (the round failed,
is still running, or closed without a result leaf) and unverified (a
proof did not verify or could not be fetched; the ERROR column says why).

The API key needs the auditor role (rounds and audit bundles). Exit 1 when
any round is missing or unverified.`

// apiRoundSource asks a coordinator's HTTP API for node.CheckRounds.
type apiRoundSource struct{ cl *api.Client }

func (s apiRoundSource) ResultLeaf(ctx context.Context, job string, round uint64) (uint64, bool, error) {
	r, err := s.cl.Round(ctx, job, round)
	if err != nil {
		return 0, false, err
	}
	if r.Result == nil || r.Result.ResultLeaf == nil {
		return 0, false, nil
	}
	return *r.Result.ResultLeaf, true, nil
}

func (s apiRoundSource) Bundle(ctx context.Context, leaf uint64) ([]byte, error) {
	return s.cl.BundleJSON(ctx, leaf)
}

func newNodeRoundsCmd(env *cmdEnv) *cobra.Command {
	var stateDir, id, memberKeys string
	var o ctlOpts
	var trust auditFlags
	c := &cobra.Command{
		Use:     "rounds",
		Short:   "Show, verified against the signed audit log, whether the cluster used each of the node's updates",
		Long:    nodeRoundsLong,
		Example: "  mfn node rounds --id site-07 --state-dir state/site-07 --server https://c1:8080 --api-key $KEY --log-key @log.vkey",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case stateDir == "":
				return usagef("--state-dir is required: the node's state directory")
			case id == "":
				return usagef("--id is required: the node's id (its updates' leaves must name it)")
			}
			if fi, err := os.Stat(stateDir); err != nil || !fi.IsDir() {
				return usagef("--state-dir %s: not a directory", stateDir)
			}
			verifier, _, err := trust.load()
			if err != nil {
				return err
			}
			var members audit.MemberKeys
			if memberKeys != "" {
				keys, err := readKeysFile(memberKeys)
				if err != nil {
					return usagef("--member-keys: %v", err)
				}
				members = audit.MemberKeys(keys)
			}
			cl, err := o.client()
			if err != nil {
				return err
			}
			st, err := node.OpenState(stateDir)
			if err != nil {
				return err
			}
			checks := node.CheckRounds(cmd.Context(), id, st.Records(), apiRoundSource{cl}, verifier, members)
			if err := cmd.Context().Err(); err != nil {
				return err
			}
			bad := 0
			for _, ch := range checks {
				if ch.Outcome == node.OutcomeMissing || ch.Outcome == node.OutcomeUnverified {
					bad++
				}
			}
			if o.asJSON {
				if checks == nil {
					checks = []node.RoundCheck{}
				}
				enc := json.NewEncoder(env.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(checks); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "JOB\tROUND\tLEAF\tRESULT LEAF\tOUTCOME\tREASON\tCHECKPOINT\tERROR")
				for _, ch := range checks {
					res, cp := "-", "-"
					if ch.ResultLeaf != nil {
						res = strconv.FormatUint(*ch.ResultLeaf, 10)
					}
					if ch.Checkpoint > 0 {
						cp = strconv.FormatUint(ch.Checkpoint, 10)
					}
					fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", ch.Job, ch.Round, ch.LeafIndex, res, ch.Outcome, dash(ch.Reason), cp, dash(ch.Error))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d rounds missing or unverified", bad, len(checks))
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&stateDir, "state-dir", "", "the node's state directory")
	fl.StringVar(&id, "id", "", "the node's id")
	fl.StringVar(&o.server, "server", "", "URL of any coordinator member's HTTP API (env MFN_SERVER)")
	fl.StringVar(&o.apiKey, "api-key", "", "API key with the auditor role, sent as X-API-Key (env MFN_API_KEY)")
	fl.DurationVar(&o.timeout, "timeout", 30*time.Second, "timeout of each request to the server, > 0")
	fl.BoolVar(&o.asJSON, "json", false, "print the checks as a JSON array")
	fl.StringVar(&o.ca, "ca", "", "PEM file of the CA certificates that sign the server's HTTPS certificate")
	fl.StringSliceVar(&o.pins, "pin", nil, "trust an HTTPS server whose certificate carries one of these coordinator keys (mfn-ed25519:<base64>, repeatable)")
	fl.StringVar(&trust.logKey, "log-key", "", `the audit log's verifier key "<name>+<hash>+<keydata>", or @FILE to read it`)
	fl.StringVar(&memberKeys, "member-keys", "", `file of coordinator member keys ("<member id> mfn-ed25519:<base64>" per line): require a majority of them to have cosigned each result's checkpoint`)
	return c
}
