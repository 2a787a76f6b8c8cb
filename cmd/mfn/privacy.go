package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/mfn/mfn/privacy"
	"github.com/spf13/cobra"
)

func init() { registerCommand(newPrivacyCmd) }

const privacyLong = `privacy answers the questions of differential-privacy planning for a
training job with client-level DP (DP-FedAvg): how much privacy a job
spends, and how much noise it needs for a budget.

The model: each round, every enrolled node takes part with probability
--sample-rate q; each update is clipped to L2 norm C and the sum gets
Gaussian noise of standard deviation z·C (z is --noise-multiplier); a job
of --steps T rounds is then (ε, δ)-differentially private for each node's
whole data set. ε comes from the Rényi-DP accountant of the sampled
Gaussian mechanism (Mironov, Talwar and Zhang 2019) with the conversion of
Balle et al. 2020, over the orders 1.1, 1.2, …, 10.9, 12, …, 63.

Sampling amplifies privacy only against parties who do not see who took
part. The coordinators and readers of the audit log do: against them use
--sample-rate 1 and --steps = the number of rounds the node took part in.
See docs/PRIVACY.md.`

func newPrivacyCmd(env *cmdEnv) *cobra.Command {
	c := &cobra.Command{
		Use:   "privacy",
		Short: "Differential-privacy accounting: ε of a job, noise for a budget",
		Long:  privacyLong,
		Example: `  mfn privacy epsilon --sample-rate 0.05 --noise-multiplier 1.1 --steps 300 --delta 1e-5
  mfn privacy noise --target-epsilon 8 --sample-rate 0.05 --steps 300 --delta 1e-5 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.AddCommand(newPrivacyEpsilonCmd(env), newPrivacyNoiseCmd(env), newPrivacyVerifySampleCmd(env))
	return c
}

// privacyFlags maps the library's parameter names to the flags that set
// them, so a *privacy.ParamError becomes a usage error naming the flag.
var privacyFlags = map[string]string{
	"sample_rate":      "--sample-rate",
	"noise_multiplier": "--noise-multiplier",
	"steps":            "--steps",
	"delta":            "--delta",
	"target_epsilon":   "--target-epsilon",
}

// privacyUsage turns a parameter error into a usage error (exit 2) that
// names the flag, its value and the valid range; other errors pass.
func privacyUsage(err error) error {
	var pe *privacy.ParamError
	if errors.As(err, &pe) {
		if flag, ok := privacyFlags[pe.Param]; ok {
			return usagef("%s %v: must be %s", flag, pe.Value, pe.Want)
		}
	}
	if errors.Is(err, privacy.ErrUnreachable) {
		return asUsage(err)
	}
	return err
}

// requireFlags is a usage error naming the first flag that was not set
// (on the command line, MFN_<FLAG> or --config).
func requireFlags(cmd *cobra.Command, names ...string) error {
	for _, n := range names {
		if !cmd.Flags().Changed(n) {
			return usagef("--%s is required", n)
		}
	}
	return nil
}

type privacyEpsilonOutput struct {
	Epsilon float64 `json:"epsilon"`
	Order   float64 `json:"order"`
}

func newPrivacyEpsilonCmd(env *cmdEnv) *cobra.Command {
	var q, z, delta float64
	var steps int
	var asJSON bool
	c := &cobra.Command{
		Use:   "epsilon",
		Short: "Print the ε a job spends, and the Rényi order that gave it",
		Long: `epsilon prints the ε of (ε, δ)-DP after --steps rounds with sample rate
--sample-rate and noise multiplier --noise-multiplier, and the Rényi order
at which the bound was found (an order at the edge of the grid, 1.1 or 63,
means the grid limited the bound). --json prints {"epsilon": …, "order": …}.

Valid input: --sample-rate in (0, 1], --noise-multiplier > 0, --steps ≥ 1,
--delta in (0, 1) (pick δ well below 1/number of nodes). Anything else
exits with status 2 and names the flag.`,
		Example: `  mfn privacy epsilon --sample-rate 0.05 --noise-multiplier 1.1 --steps 300 --delta 1e-5
  # DP-SGD on MNIST (Abadi et al.): batches of 256 of 60,000 for 60 epochs
  mfn privacy epsilon --sample-rate 0.0042666667 --noise-multiplier 1.1 --steps 14063 --delta 1e-5 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "sample-rate", "noise-multiplier", "steps"); err != nil {
				return err
			}
			eps, order, err := privacy.Epsilon(q, z, steps, delta)
			if err != nil {
				return privacyUsage(err)
			}
			if math.IsInf(eps, 1) {
				return fmt.Errorf("no finite ε: --noise-multiplier %v is too small for any Rényi order to bound the privacy loss", z)
			}
			return printPrivacy(env.stdout, asJSON, privacyEpsilonOutput{Epsilon: eps, Order: order},
				fmt.Sprintf("epsilon: %.6g\norder:   %g\n", eps, order))
		},
	}
	c.Flags().Float64Var(&q, "sample-rate", 0, "q: probability that a node takes part in a round, in (0, 1] (required)")
	c.Flags().Float64Var(&z, "noise-multiplier", 0, "z: noise standard deviation over the clipping norm, > 0 (required)")
	c.Flags().IntVar(&steps, "steps", 0, "T: number of rounds, ≥ 1 (required)")
	c.Flags().Float64Var(&delta, "delta", 1e-5, "δ of (ε, δ)-DP, in (0, 1)")
	c.Flags().BoolVar(&asJSON, "json", false, `print {"epsilon": …, "order": …}`)
	return c
}

type privacyNoiseOutput struct {
	NoiseMultiplier float64 `json:"noise_multiplier"`
	Epsilon         float64 `json:"epsilon"`
	Order           float64 `json:"order"`
}

func newPrivacyNoiseCmd(env *cmdEnv) *cobra.Command {
	var target, q, delta float64
	var steps int
	var asJSON bool
	c := &cobra.Command{
		Use:   "noise",
		Short: "Print the smallest noise multiplier that keeps a job within a target ε",
		Long: `noise solves for the noise multiplier z: the smallest z (to a relative
tolerance of 1e-6, rounded towards more noise) for which "mfn privacy
epsilon" with the same --sample-rate, --steps and --delta gives at most
--target-epsilon. It prints z, the ε it actually gives and that ε's order;
--json prints {"noise_multiplier": …, "epsilon": …, "order": …}.

A target at or below the smallest ε the grid of orders can certify (about
0.103 at δ = 1e-5, whatever the noise) is refused with status 2, as is any
flag out of range.`,
		Example: `  mfn privacy noise --target-epsilon 8 --sample-rate 0.05 --steps 300 --delta 1e-5
  mfn privacy noise --target-epsilon 3 --sample-rate 0.01 --steps 1000 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "target-epsilon", "sample-rate", "steps"); err != nil {
				return err
			}
			z, err := privacy.NoiseMultiplier(target, q, steps, delta)
			if err != nil {
				return privacyUsage(err)
			}
			eps, order, err := privacy.Epsilon(q, z, steps, delta)
			if err != nil {
				return err
			}
			return printPrivacy(env.stdout, asJSON, privacyNoiseOutput{NoiseMultiplier: z, Epsilon: eps, Order: order},
				fmt.Sprintf("noise multiplier: %.6g\nepsilon:          %.6g\norder:            %g\n", z, eps, order))
		},
	}
	c.Flags().Float64Var(&target, "target-epsilon", 0, "the ε the whole job may spend, > 0 (required)")
	c.Flags().Float64Var(&q, "sample-rate", 0, "q: probability that a node takes part in a round, in (0, 1] (required)")
	c.Flags().IntVar(&steps, "steps", 0, "T: number of rounds, ≥ 1 (required)")
	c.Flags().Float64Var(&delta, "delta", 1e-5, "δ of (ε, δ)-DP, in (0, 1)")
	c.Flags().BoolVar(&asJSON, "json", false, `print {"noise_multiplier": …, "epsilon": …, "order": …}`)
	return c
}

// printPrivacy writes v as one JSON line, or text.
func printPrivacy(w io.Writer, asJSON bool, v any, text string) error {
	if asJSON {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	_, err := io.WriteString(w, text)
	return err
}

type privacyVerifySampleOutput struct {
	OK      bool   `json:"ok"`
	Job     string `json:"job"`
	Leaves  uint64 `json:"leaves"`
	Updates int    `json:"updates"`
	Rounds  int    `json:"rounds"`
	Error   string `json:"error,omitempty"`
}

func newPrivacyVerifySampleCmd(env *cmdEnv) *cobra.Command {
	var job, secretHex, jobJSON string
	var q float64
	var asJSON bool
	c := &cobra.Command{
		Use:   "verify-sample LOG-DIR",
		Short: "Check that every update of a sampled DP job came from a node its round sampled",
		Long: `verify-sample reads an exported audit log (the folder "mfn ctl audit
export" writes; check it first with "mfn audit verify-log") and checks, for
every update leaf of --job, that its node was in the round's sample: a DP
job with dp.sample_rate q < 1 announces each round to the nodes with
SHA-256(seed ‖ node id) below q·2^64, where the round's seed is
HMAC-SHA-256(secret, "mfn/privacy/node-sample/v1" ‖ 0 ‖ job ‖ 0 ‖ round ‖
base model hash) and the base hash is the one in the node's signed
statement. --secret is the job's 32-byte secret, in hex or in base64 as
the job's JSON (GET /v1/jobs/JOB) shows it in privacy.secret once the job
has ended.

It prints how many updates and rounds it checked. An update from an
unsampled node exits with status 1 and names its leaf, round and node
(a leader that let it in, or the wrong secret or rate); bad flags exit 2.`,
		Example: `  mfn privacy verify-sample export/ --job regime-dp --sample-rate 0.05 --secret 5f1c…
  curl -s -H "X-API-Key: $KEY" https://10.0.0.1:8081/v1/jobs/regime-dp > job.json
  mfn privacy verify-sample export/ --job-json job.json
  mfn privacy verify-sample export/ --job regime-dp --sample-rate 0.05 --secret 5f1c… --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if jobJSON != "" {
				if err := loadSampleJob(cmd, jobJSON, &job, &q, &secretHex); err != nil {
					return err
				}
			} else if err := requireFlags(cmd, "job", "sample-rate", "secret"); err != nil {
				return err
			}
			if !(q > 0 && q <= 1) {
				return usagef("--sample-rate %v: must be in (0, 1]", q)
			}
			secret, err := hex.DecodeString(secretHex)
			if err != nil {
				secret, err = base64.StdEncoding.DecodeString(secretHex)
			}
			if err != nil || len(secret) != 32 {
				return usagef("--secret: want the job's 32-byte secret as 64 hex digits or base64 (as the job's JSON shows it)")
			}
			if st, err := os.Stat(args[0]); err != nil || !st.IsDir() {
				return usagef("LOG-DIR %s: not a folder", args[0])
			}
			rep, verr := privacy.VerifySampleFS(os.DirFS(args[0]), job, secret, q)
			out := privacyVerifySampleOutput{OK: verr == nil, Job: job, Leaves: rep.Leaves, Updates: rep.Updates, Rounds: rep.Rounds}
			text := fmt.Sprintf("OK: job %s: %d updates in %d rounds, every node in its round's sample (rate %v; %d leaves read)\n",
				job, rep.Updates, rep.Rounds, q, rep.Leaves)
			if verr != nil {
				if errors.Is(verr, privacy.ErrInvalidParameter) {
					return privacyUsage(verr)
				}
				out.Error, text = verr.Error(), ""
			}
			if err := printPrivacy(env.stdout, asJSON, out, text); err != nil {
				return err
			}
			if verr != nil {
				return fmt.Errorf("verify-sample FAILED: %w", verr)
			}
			return nil
		},
	}
	c.Flags().StringVar(&job, "job", "", "the job id (required)")
	c.Flags().Float64Var(&q, "sample-rate", 0, "the job's dp.sample_rate q, in (0, 1] (required)")
	c.Flags().StringVar(&secretHex, "secret", "", "the job's secret: 64 hex digits or base64 (required)")
	c.Flags().StringVar(&jobJSON, "job-json", "", "take --job, --sample-rate and --secret (unless given) from this job JSON (GET /v1/jobs/JOB, or mfn demo --json)")
	c.Flags().BoolVar(&asJSON, "json", false, `print {"ok": …, "job": …, "leaves": …, "updates": …, "rounds": …, "error": …}`)
	return c
}

// maxJobJSON bounds the job JSON verify-sample reads.
const maxJobJSON = 64 << 20

// loadSampleJob fills the job id, sample rate and secret that were not
// given as flags from a job's JSON ({"spec": {"id": …}, "privacy":
// {"sample_rate": …, "secret": …}}; a demo summary has "privacy" too).
func loadSampleJob(cmd *cobra.Command, path string, job *string, q *float64, secret *string) error {
	f, err := os.Open(path)
	if err != nil {
		return usagef("--job-json %s: %v", path, err)
	}
	defer f.Close()
	var v struct {
		Spec struct {
			ID string `json:"id"`
		} `json:"spec"`
		Privacy *struct {
			SampleRate float64 `json:"sample_rate"`
			Secret     []byte  `json:"secret"`
		} `json:"privacy"`
	}
	if err := json.NewDecoder(io.LimitReader(f, maxJobJSON)).Decode(&v); err != nil {
		return usagef("--job-json %s: %v", path, err)
	}
	if v.Privacy == nil {
		return usagef("--job-json %s: no privacy object (not a DP job)", path)
	}
	fl := cmd.Flags()
	if !fl.Changed("job") {
		*job = v.Spec.ID
	}
	if !fl.Changed("sample-rate") {
		*q = v.Privacy.SampleRate
	}
	if !fl.Changed("secret") {
		if len(v.Privacy.Secret) == 0 {
			return usagef("--job-json %s: no privacy.secret (shown once the job has ended)", path)
		}
		*secret = hex.EncodeToString(v.Privacy.Secret)
	}
	if *job == "" {
		return usagef("--job is required (the job JSON names none)")
	}
	return nil
}
