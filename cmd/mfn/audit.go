package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/crypto"
	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
)

func init() { registerCommand(newAuditCmd) }

const auditLong = `audit checks the cluster's tamper-evident log offline, trusting nothing but
the log's public key (and, optionally, the enrolled node keys).

Every accepted update is a leaf of an append-only RFC 6962 Merkle tree. The
cluster periodically signs a checkpoint (C2SP tlog-checkpoint: origin, tree
size, root) with its log key. An auditor checks:

  audit verify --bundle FILE     one update's proof bundle: the checkpoint's
                                 signature, the node's signature inside the
                                 leaf, and the leaf's inclusion under the
                                 checkpoint's root;
  audit verify-log DIR           a whole exported log: every leaf's node
                                 signature, the tree rebuilt from the leaves
                                 against the newest checkpoint, and
                                 consistency between successive checkpoints
                                 (no fork, no rollback).

  audit replay --archive ROUND    one round re-derived from its archive (the
                                 sealed updates, the base model, the result
                                 leaf) with a coordinator age key: the new
                                 model's hash must equal the result's.

They exit 0 and print a short summary on success; on failure they exit 1 and
name the first failing leaf (index and file), checkpoint file or round.

--log-key takes the verifier key string "<name>+<hash>+<keydata>" itself or
@FILE to read it from a file (e.g. @log.vkey). --node-keys FILE lists the
enrolled nodes, one "<node id> mfn-ed25519:<base64 key>" per line (as "mfn
keygen" prints them); with it, a leaf signed by any other key fails.

"audit keygen" creates a log key pair; "audit demo-log" writes a signed
sample log (fixed, public node keys; --rounds adds round results and member
cosignatures) and "audit demo-round" a sample round archive, for tutorials
and tests. docs/AUDIT.md describes the formats and every check.`

func newAuditCmd(env *cmdEnv) *cobra.Command {
	c := &cobra.Command{
		Use:   "audit",
		Short: "Verify the audit log offline: proof bundles, whole exported logs",
		Long:  auditLong,
		Example: `  mfn audit keygen --name mfn.example/cluster-1 --out ./logkey
  mfn audit demo-log --out ./log --log-key-file ./logkey/log.skey --bundles
  mfn audit verify-log ./log --log-key @./logkey/log.vkey
  mfn audit verify --bundle ./log/bundles/00000003.json --log-key @./logkey/log.vkey
  mfn audit replay --archive round-7.tar --identity /etc/mfn/coord-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.AddCommand(newAuditKeygenCmd(env), newAuditVerifyCmd(env), newAuditVerifyLogCmd(env), newAuditDemoLogCmd(env), newAuditReplayCmd(env), newAuditDemoRoundCmd(env))
	return c
}

// Key file names written by "audit keygen".
const (
	logSignerFile   = "log.skey"
	logVerifierFile = "log.vkey"
)

func newAuditKeygenCmd(env *cmdEnv) *cobra.Command {
	var name, out string
	c := &cobra.Command{
		Use:   "keygen",
		Short: "Create the cluster's log signing key (checkpoint key)",
		Long: `keygen creates the Ed25519 note key that signs the cluster's audit
checkpoints, named --name (use the cluster origin). It writes to --out:

  log.skey  PRIVATE+KEY+<name>+<hash>+<keydata>  (mode 0600; coordinators only)
  log.vkey  <name>+<hash>+<keydata>              (mode 0644; give to auditors)

It never overwrites: if either file exists it writes nothing and fails. It
prints the verifier key.`,
		Example: "  mfn audit keygen --name mfn.example/cluster-1 --out /etc/mfn/logkey",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return usagef("--name is required: the log's name, e.g. the cluster origin mfn.example/cluster-1")
			}
			if out == "" {
				return usagef("--out is required: the directory to write log.skey and log.vkey to")
			}
			skey, vkey, err := audit.GenerateLogKey(name, rand.Reader)
			if err != nil {
				return usagef("--name %q: must be non-empty, without spaces or '+'", name)
			}
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
			spath, vpath := filepath.Join(out, logSignerFile), filepath.Join(out, logVerifierFile)
			for _, p := range []string{spath, vpath} {
				if _, err := os.Stat(p); err == nil {
					return fmt.Errorf("%s already exists; refusing to overwrite a log key", p)
				}
			}
			if err := writeNewFile(spath, []byte(skey+"\n"), 0o600); err != nil {
				return err
			}
			if err := writeNewFile(vpath, []byte(vkey+"\n"), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(env.stderr, "wrote %s and %s\n", spath, vpath)
			fmt.Fprintln(env.stdout, vkey)
			return nil
		},
	}
	c.Flags().StringVar(&name, "name", "", "key name: the log's origin, e.g. mfn.example/cluster-1")
	c.Flags().StringVar(&out, "out", "", "directory to write log.skey and log.vkey to (created if missing)")
	return c
}

// writeNewFile creates path exclusively with mode perm and writes data.
func writeNewFile(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// auditFlags are the trust inputs shared by verify and verify-log.
type auditFlags struct {
	logKey     string
	nodeKeys   string
	memberKeys string
	asJSON     bool
}

func (f *auditFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.logKey, "log-key", "", `the log's verifier key "<name>+<hash>+<keydata>", or @FILE to read it`)
	c.Flags().StringVar(&f.nodeKeys, "node-keys", "", `file of enrolled node keys ("<node id> mfn-ed25519:<base64>" per line); empty trusts the key in each leaf`)
	c.Flags().BoolVar(&f.asJSON, "json", false, "print the result as a JSON object")
}

// load parses --log-key and --node-keys.
func (f *auditFlags) load() (note.Verifier, audit.NodeKeys, error) {
	if f.logKey == "" {
		return nil, nil, usagef("--log-key is required: the log's verifier key or @FILE")
	}
	text := f.logKey
	if path, ok := strings.CutPrefix(text, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, usagef("--log-key %s: %v", f.logKey, err)
		}
		text = string(b)
	}
	v, err := audit.NewLogVerifier(text)
	if err != nil {
		return nil, nil, usagef("--log-key: not a verifier key \"<name>+<hash>+<keydata>\": %v", err)
	}
	if f.nodeKeys == "" {
		return v, nil, nil
	}
	nf, err := os.Open(f.nodeKeys)
	if err != nil {
		return nil, nil, usagef("--node-keys: %v", err)
	}
	defer nf.Close()
	keys, err := audit.ParseNodeKeys(nf)
	if err != nil {
		return nil, nil, usagef("--node-keys %s: %v", f.nodeKeys, err)
	}
	return v, keys, nil
}

// auditResult is the --json output of verify and verify-log.
type auditResult struct {
	OK          bool    `json:"ok"`
	Error       string  `json:"error,omitempty"`
	LeafIndex   *uint64 `json:"leaf_index,omitempty"`
	File        string  `json:"file,omitempty"`
	Origin      string  `json:"origin,omitempty"`
	Leaves      uint64  `json:"leaves,omitempty"`
	Checkpoints int     `json:"checkpoints,omitempty"`
	TreeSize    uint64  `json:"tree_size,omitempty"`
	Root        string  `json:"root,omitempty"`
	NodeID      string  `json:"node_id,omitempty"`
	JobID       string  `json:"job_id,omitempty"`
	Round       uint64  `json:"round,omitempty"`
	UpdateHash  string  `json:"update_hash,omitempty"`
	// Results is the number of round result leaves verify-log checked.
	Results int `json:"results,omitempty"`
}

// verificationFailed reports a failed verification: as JSON on stdout when
// asked, and always as the command's error (exit 1).
func verificationFailed(env *cmdEnv, asJSON bool, err error) error {
	if asJSON {
		res := auditResult{Error: err.Error()}
		var le *audit.LeafError
		var ce *audit.CheckpointError
		var lay *audit.LayoutError
		var re *audit.RoundError
		if errors.As(err, &re) {
			res.JobID, res.Round = re.Job, re.Round
			idx := re.Index
			res.LeafIndex = &idx
		}
		switch {
		case errors.As(err, &le):
			res.LeafIndex, res.File = &le.Index, le.File
		case errors.As(err, &ce):
			res.File = ce.File
		case errors.As(err, &lay):
			res.File = lay.Path
		}
		if werr := writeJSON(env.stdout, res); werr != nil {
			return werr
		}
	}
	return fmt.Errorf("verification FAILED: %w", err)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func newAuditVerifyCmd(env *cmdEnv) *cobra.Command {
	var flags auditFlags
	var bundlePath string
	c := &cobra.Command{
		Use:   "verify",
		Short: "Verify one update's proof bundle against the log key",
		Long: `verify checks a proof bundle (the JSON the cluster hands out per accepted
update: leaf, leaf index, inclusion proof, signed checkpoint) offline: the
checkpoint is signed by the log key, the leaf decodes and carries a valid
signature by its node over a statement that matches it (and the node is
enrolled, with --node-keys), and the inclusion proof places the leaf under
the checkpoint's root. Exit 0 on success, 1 naming the failure.`,
		Example: "  mfn audit verify --bundle update-17.json --log-key @log.vkey\n  mfn audit verify --bundle b.json --log-key 'mfn.example/c+1a2b3c4d+AW...' --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if bundlePath == "" {
				return usagef("--bundle is required: the proof bundle JSON file")
			}
			v, keys, err := flags.load()
			if err != nil {
				return err
			}
			data, err := readCapped(bundlePath, audit.MaxBundleLen)
			if err != nil {
				return err
			}
			b, err := audit.ParseBundle(data)
			if err != nil {
				return verificationFailed(env, flags.asJSON, fmt.Errorf("%s: %w", bundlePath, err))
			}
			rep, err := audit.VerifyBundle(b, v, keys)
			if err != nil {
				return verificationFailed(env, flags.asJSON, err)
			}
			l, cp := rep.Leaf, rep.Checkpoint
			if flags.asJSON {
				idx := rep.LeafIndex
				return writeJSON(env.stdout, auditResult{OK: true, LeafIndex: &idx, Origin: cp.Origin, TreeSize: cp.Size,
					Root: b64(cp.Root[:]), NodeID: l.NodeID, JobID: l.JobID, Round: l.Round, UpdateHash: hex.EncodeToString(l.UpdateHash[:])})
			}
			fmt.Fprintf(env.stdout, "OK: leaf %d (node %s, job %s, round %d, update %x) is in log %s\n",
				rep.LeafIndex, l.NodeID, l.JobID, l.Round, l.UpdateHash[:8], cp.Origin)
			fmt.Fprintf(env.stdout, "    under the signed checkpoint of size %d, root %s\n", cp.Size, b64(cp.Root[:]))
			return nil
		},
	}
	c.Flags().StringVar(&bundlePath, "bundle", "", "the proof bundle JSON file")
	flags.register(c)
	return c
}

// readCapped reads a file of at most limit bytes.
func readCapped(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

func newAuditVerifyLogCmd(env *cmdEnv) *cobra.Command {
	var flags auditFlags
	var since string
	c := &cobra.Command{
		Use:   "verify-log DIR",
		Short: "Verify a whole exported audit log: leaves, tree, checkpoint consistency",
		Long: `verify-log checks an exported log directory offline:

  DIR/checkpoints/000001.note ...  successive signed checkpoints
  DIR/leaves/00000000.leaf ...     the encoded leaves, named by index

Every checkpoint must be signed by the log key, never shrink (rollback) nor
change root at an equal size (fork); every leaf must decode and carry a
valid node signature matching its statement; the tree rebuilt from the
leaves must equal the newest checkpoint (size and root); and each pair of
successive checkpoints must be consistent (an RFC 6962 consistency proof
computed from the leaves verifies between their roots). The first failure is
reported with the leaf index and file or the checkpoint file. Other files in
DIR are ignored.

Round results (export format 2): every result leaf must name only update
leaves of its job and round that come before it, no update may be named by
two results, each result's base model hash must be the new model hash of
the job's previous result (and its round later), and a majority of the
coordinator members must have cosigned (C2SP tlog-cosignature lines in the
checkpoint notes) a checkpoint covering it. Member keys come from
--member-keys or DIR/members.keys. Such failures name the job and round.

One export cannot reveal being cut back to an older checkpoint (with the
newer ones removed) or a fork shown only to you: keep the newest checkpoint
you verified (DIR/checkpoints/<last>.note, or the one in a bundle) and pass
it next time as --since; the log must then extend it.`,
		Example: "  mfn audit verify-log ./exported-log --log-key @log.vkey\n  mfn audit verify-log ./exported-log --log-key @log.vkey --node-keys nodes.keys --since last-seen.note --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, keys, err := flags.load()
			if err != nil {
				return err
			}
			if st, err := os.Stat(args[0]); err != nil || !st.IsDir() {
				return usagef("verify-log %s: not a directory", args[0])
			}
			opts := audit.VerifyOptions{NodeKeys: keys}
			if flags.memberKeys != "" {
				if opts.Members, err = readKeysFile(flags.memberKeys); err != nil {
					return usagef("--member-keys %s: %v", flags.memberKeys, err)
				}
			}
			if since != "" {
				if opts.Since, err = readCapped(since, audit.MaxCheckpointLen); err != nil {
					return usagef("--since: %v", err)
				}
			}
			rep, err := audit.VerifyLogFSWith(os.DirFS(args[0]), v, opts)
			if err != nil {
				return verificationFailed(env, flags.asJSON, err)
			}
			if flags.asJSON {
				return writeJSON(env.stdout, auditResult{OK: true, Origin: rep.Origin, Leaves: rep.Leaves, Checkpoints: rep.Checkpoints,
					TreeSize: rep.Leaves, Root: b64(rep.Root[:]), File: rep.Latest, Results: rep.Results})
			}
			fmt.Fprintf(env.stdout, "OK: log %s: %d leaves, %d checkpoints, root %s\n", rep.Origin, rep.Leaves, rep.Checkpoints, b64(rep.Root[:]))
			if rep.Results > 0 {
				fmt.Fprintf(env.stdout, "    %d round results: updates of their rounds, none used twice, base models chained, cosigned by a quorum of members\n", rep.Results)
			}
			return nil
		},
	}
	flags.register(c)
	c.Flags().StringVar(&flags.memberKeys, "member-keys", "", `file of coordinator member cosigning keys ("<member id> mfn-ed25519:<base64>" per line); empty uses DIR/members.keys`)
	c.Flags().StringVar(&since, "since", "", "a checkpoint note accepted earlier (e.g. the previous audit's newest); the log must extend it")
	return c
}

// readKeysFile reads a "<id> mfn-ed25519:<base64>" keys file.
func readKeysFile(path string) (audit.NodeKeys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return audit.ParseNodeKeys(f)
}

func newAuditDemoLogCmd(env *cmdEnv) *cobra.Command {
	var out, keyFile string
	var rounds, cosigners int
	var leaves, nodes, every int
	var seed uint64
	var bundles bool
	c := &cobra.Command{
		Use:   "demo-log",
		Short: "Write a signed sample audit log (public node keys) for tutorials and tests",
		Long: `demo-log builds a sample audit log and exports it to --out as "audit
verify-log" expects it. Nodes node-00, node-01, ... take turns submitting
updates of job "sample-job"; their Ed25519 keys are derived from public seeds
(never enroll them anywhere real); update hashes come from --seed, times from
a fixed epoch, so the same flags and log key always give the same files.
Checkpoints are signed with the log key in --log-key-file (from "audit
keygen"), whose name is the log's origin.

Besides leaves/ and checkpoints/ it writes nodes.keys (the sample nodes'
enrolled keys, for --node-keys) and, with --bundles, one proof bundle per
leaf as bundles/<index>.json.

With --rounds N it writes instead N rounds of job "sample-job": --nodes
updates each, a result leaf per round (rule krum, the first node's update
rejected) and a checkpoint cosigned by --cosigners of the three sample
members coord-0..coord-2, whose keys it writes to members.keys (export
format 2). Its model hashes are labels: it passes "audit verify-log", it
cannot be replayed.`,
		Example: "  mfn audit keygen --name mfn.example/demo --out ./logkey\n  mfn audit demo-log --out ./log --log-key-file ./logkey/log.skey --leaves 20 --checkpoint-every 5 --bundles\n  mfn audit demo-log --out ./rounds --log-key-file ./logkey/log.skey --rounds 3 --nodes 4",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case out == "":
				return usagef("--out is required: the directory to export the sample log to")
			case keyFile == "":
				return usagef("--log-key-file is required: the log.skey written by \"mfn audit keygen\"")
			case leaves < 1 || leaves > 1_000_000:
				return usagef("--leaves %d: must be in [1, 1000000]", leaves)
			case nodes < 1 || nodes > 1000:
				return usagef("--nodes %d: must be in [1, 1000]", nodes)
			case every < 0:
				return usagef("--checkpoint-every %d: must be >= 0 (0 = one checkpoint at the end)", every)
			case rounds < 0 || rounds > 10000:
				return usagef("--rounds %d: must be in [0, 10000] (0 = a log without round results)", rounds)
			}
			skeyBytes, err := readCapped(keyFile, 4096)
			if err != nil {
				return usagef("--log-key-file: %v", err)
			}
			signer, err := audit.NewLogSigner(string(skeyBytes))
			if err != nil {
				return usagef("--log-key-file %s: not a log signer key (PRIVATE+KEY+...)", keyFile)
			}
			vkey, err := audit.LogVerifierKey(string(skeyBytes))
			if err != nil {
				return usagef("--log-key-file %s: %v", keyFile, err)
			}
			verifier, err := audit.NewLogVerifier(vkey)
			if err != nil {
				return err
			}
			var l *audit.Log
			if rounds > 0 {
				if nodes < 2 || cosigners < 0 || cosigners > 3 {
					return usagef("--rounds needs --nodes >= 2 and --cosigners in [0, 3] (0 = all 3 members)")
				}
				var members audit.MemberKeys
				l, members, err = audit.BuildSampleRoundsLog(audit.SampleRoundsConfig{Origin: signer.Name(), Rounds: rounds, Nodes: nodes, Cosigners: cosigners, Seed: seed}, signer, verifier)
				if err != nil {
					return err
				}
				if err := audit.ExportDirWith(out, l, audit.ExportOptions{Members: members}); err != nil {
					return err
				}
			} else {
				if l, err = audit.BuildSampleLog(audit.SampleConfig{Origin: signer.Name(), Leaves: leaves, Nodes: nodes, CheckpointEvery: every, Seed: seed}, signer, verifier); err != nil {
					return err
				}
				if err := audit.ExportDir(out, l); err != nil {
					return err
				}
			}
			if err := writeNewFile(filepath.Join(out, "nodes.keys"), audit.SampleNodeKeys(nodes).Format(), 0o644); err != nil {
				return err
			}
			if bundles {
				if err := os.Mkdir(filepath.Join(out, "bundles"), 0o755); err != nil {
					return err
				}
				for i := range l.Size() {
					b, err := l.Bundle(i)
					if err != nil {
						return err
					}
					data, err := b.Marshal()
					if err != nil {
						return err
					}
					if err := writeNewFile(filepath.Join(out, "bundles", fmt.Sprintf("%08d.json", i)), data, 0o644); err != nil {
						return err
					}
				}
			}
			root := l.Root()
			fmt.Fprintf(env.stdout, "wrote sample log %s to %s: %d leaves, %d checkpoints, root %s\n", l.Origin(), out, l.Size(), l.Checkpoints(), b64(root[:]))
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "directory to export the sample log to")
	c.Flags().StringVar(&keyFile, "log-key-file", "", "the log signer key file (log.skey from \"mfn audit keygen\")")
	c.Flags().IntVar(&leaves, "leaves", 8, "number of sample leaves, 1..1000000")
	c.Flags().IntVar(&nodes, "nodes", 4, "number of sample nodes taking turns, 1..1000")
	c.Flags().IntVar(&every, "checkpoint-every", 0, "sign a checkpoint after every this many leaves (0 = only at the end)")
	c.Flags().Uint64Var(&seed, "seed", 1, "seed of the sample update hashes")
	c.Flags().BoolVar(&bundles, "bundles", false, "also write one proof bundle per leaf to DIR/bundles/<index>.json")
	c.Flags().IntVar(&rounds, "rounds", 0, "instead of --leaves: 1..10000 rounds of --nodes updates, each closed by a result leaf and a checkpoint cosigned by sample members (writes members.keys)")
	c.Flags().IntVar(&cosigners, "cosigners", 0, "with --rounds: how many of the 3 sample members cosign each checkpoint, 0..3 (0 = all)")
	return c
}

// replayResult is the --json output of audit replay.
type replayResult struct {
	OK       bool     `json:"ok"`
	Error    string   `json:"error,omitempty"`
	JobID    string   `json:"job_id,omitempty"`
	Round    uint64   `json:"round,omitempty"`
	Rule     string   `json:"rule,omitempty"`
	Inputs   int      `json:"inputs,omitempty"`
	Used     []uint64 `json:"used,omitempty"`
	NewHash  string   `json:"new_model_hash,omitempty"`
	LeafHash string   `json:"result_leaf_hash,omitempty"`
}

func newAuditReplayCmd(env *cmdEnv) *cobra.Command {
	var archive, identity string
	var asJSON bool
	var maxBytes int64
	c := &cobra.Command{
		Use:   "replay",
		Short: "Re-derive a round's model from its archive and compare it with the result leaf",
		Long: `replay re-runs one round offline, bit for bit: it opens the sealed updates
in a round archive with a coordinator's age key, checks each against its
logged update leaf, runs the rule and parameters the result leaf names on
them in the recorded input order (weighted as recorded), adds the aggregate
to the archived base model and compares the SHA-256 of the new model with
the result leaf's new model hash. The base model must hash to the result's
base hash and the rule must use exactly the updates the result marks used.

--archive is a tar file or a directory laid out as:

  FORMAT                   "mfn-round-archive 1"
  result.leaf              the round's result leaf (as in the log)
  base.model               the base model (float64 update encoding)
  updates/<index>.leaf     each update leaf the result names
  updates/<index>.sealed   the sealed envelope of each update given to the rule

--identity is a coordinator identity directory (its age.key is used) or a
file of age identities (AGE-SECRET-KEY-1...). Exit 0 when the hashes match,
1 naming the mismatch; the result leaf hash printed lets you find the same
leaf in an exported log verified with "audit verify-log".`,
		Example: "  mfn audit replay --archive round-7.tar --identity /etc/mfn/coord-1\n  mfn audit replay --archive ./round-7 --identity coord.agekey --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case archive == "":
				return usagef("--archive is required: the round archive (tar file or directory)")
			case identity == "":
				return usagef("--identity is required: a coordinator identity directory or age identity file")
			case maxBytes < 1<<20:
				return usagef("--max-archive-bytes %d: must be >= 1048576", maxBytes)
			}
			ids, err := loadAgeIdentities(identity)
			if err != nil {
				return usagef("--identity %s: %v", identity, err)
			}
			st, err := os.Stat(archive)
			if err != nil {
				return usagef("--archive %s: %v", archive, err)
			}
			limits := audit.ArchiveLimits{MaxTotalBytes: maxBytes}
			var a *audit.RoundArchive
			if st.IsDir() {
				a, err = audit.ReadRoundArchiveFS(os.DirFS(archive), limits)
			} else {
				var f *os.File
				if f, err = os.Open(archive); err != nil {
					return err
				}
				a, err = audit.ReadRoundArchiveTar(f, limits)
				f.Close()
			}
			if err == nil {
				err = cmd.Context().Err()
			}
			var rep *audit.ReplayReport
			if err == nil {
				// Replay does not take a context; stop waiting on SIGINT.
				done := make(chan struct{})
				go func() {
					defer close(done)
					rep, err = audit.Replay(a, ids, limits)
				}()
				select {
				case <-done:
				case <-cmd.Context().Done():
					return fmt.Errorf("replay interrupted: %w", cmd.Context().Err())
				}
			}
			if err != nil {
				if asJSON {
					if werr := writeJSON(env.stdout, replayResult{Error: err.Error()}); werr != nil {
						return werr
					}
				}
				return fmt.Errorf("replay FAILED: %w", err)
			}
			r := rep.Result
			if asJSON {
				return writeJSON(env.stdout, replayResult{OK: true, JobID: r.JobID, Round: r.Round, Rule: r.Rule, Inputs: rep.Inputs,
					Used: rep.Used, NewHash: hex.EncodeToString(rep.NewHash[:]), LeafHash: b64(rep.LeafHash[:])})
			}
			fmt.Fprintf(env.stdout, "OK: job %s round %d: %s over %d inputs (used %v) re-derives model %x\n",
				r.JobID, r.Round, r.Rule, rep.Inputs, rep.Used, rep.NewHash[:])
			fmt.Fprintf(env.stdout, "    result leaf hash %s\n", b64(rep.LeafHash[:]))
			return nil
		},
	}
	c.Flags().StringVar(&archive, "archive", "", "the round archive: a tar file or a directory")
	c.Flags().StringVar(&identity, "identity", "", "a coordinator identity directory, or a file of age identities")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as a JSON object")
	c.Flags().Int64Var(&maxBytes, "max-archive-bytes", 4<<30, "largest archive read, in bytes (>= 1048576)")
	return c
}

// loadAgeIdentities reads a coordinator identity directory's age key or a
// file of age identities.
func loadAgeIdentities(path string) ([]age.Identity, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		id, err := crypto.LoadIdentity(path)
		if err != nil {
			return nil, err
		}
		if id.Age == nil {
			return nil, errors.New("not a coordinator identity (no age.key)")
		}
		return []age.Identity{id.Age}, nil
	}
	data, err := readCapped(path, 1<<20)
	if err != nil {
		return nil, err
	}
	return age.ParseIdentities(bytes.NewReader(data))
}

func newAuditDemoRoundCmd(env *cmdEnv) *cobra.Command {
	var out, identity string
	var dim, nodes int
	var seed uint64
	c := &cobra.Command{
		Use:   "demo-round",
		Short: "Write a sample round archive sealed to a coordinator key, for audit replay tutorials",
		Long: `demo-round runs one sample round as a coordinator would and writes its
round archive (see "audit replay") to --out as a tar file: sample nodes
node-00, node-01, ... (public keys: never enroll them) seal updates of a
--dim parameter model to the coordinator key of --identity (a coordinator
identity directory or an age identity file); the last node's update is an
outlier; krum (f=1) weighted by sample counts aggregates them and the
result leaf records the outcome. "audit replay" with the same identity
then re-derives the model. The base model and updates follow --seed; the
envelopes' encryption is random. The file is written atomically.`,
		Example: "  mfn keygen --role coordinator --out ./coord\n  mfn audit demo-round --identity ./coord --out round.tar\n  mfn audit replay --archive round.tar --identity ./coord",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case out == "":
				return usagef("--out is required: the archive file to write")
			case identity == "":
				return usagef("--identity is required: the coordinator identity (directory or age identity file) to seal to")
			case dim < 1 || dim > 1<<20:
				return usagef("--dim %d: must be in [1, 1048576]", dim)
			case nodes < 3 || nodes > 1000:
				return usagef("--nodes %d: must be in [3, 1000]", nodes)
			}
			ids, err := loadAgeIdentities(identity)
			if err != nil {
				return usagef("--identity %s: %v", identity, err)
			}
			x, ok := ids[0].(*age.X25519Identity)
			if len(ids) != 1 || !ok {
				return usagef("--identity %s: want exactly one X25519 age identity", identity)
			}
			// The sample log only holds the leaves; its key is thrown away.
			_, vkey, err := audit.GenerateLogKey("mfn.example/sample", rand.Reader)
			if err != nil {
				return err
			}
			v, err := audit.NewLogVerifier(vkey)
			if err != nil {
				return err
			}
			l, err := audit.NewLog("mfn.example/sample", v)
			if err != nil {
				return err
			}
			a, err := audit.BuildSampleRoundArchive(audit.SampleArchiveConfig{Dim: dim, Nodes: nodes, Seed: seed}, x.Recipient(), l)
			if err != nil {
				return err
			}
			if err := writeAtomically(cmd.Context(), out, func(w io.Writer) error { return audit.WriteRoundArchive(w, a) }); err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "wrote sample round archive %s: job sample-job round 1, %d sealed updates of %d parameters\n", out, nodes, dim)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "the archive file to write (tar)")
	c.Flags().StringVar(&identity, "identity", "", "the coordinator identity directory or age identity file to seal the updates to")
	c.Flags().IntVar(&dim, "dim", 8, "model parameters, 1..1048576")
	c.Flags().IntVar(&nodes, "nodes", 5, "sample nodes, 3..1000")
	c.Flags().Uint64Var(&seed, "seed", 1, "seed of the base model and the updates")
	return c
}
