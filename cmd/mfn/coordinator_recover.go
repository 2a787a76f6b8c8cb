package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/coordinator"
)

const recoverLong = `Rebuild the Raft configuration of a stopped member after the cluster lost
its quorum for good (the equivalent of hashicorp/raft's peers.json).

When a majority of the voters is gone, nothing can be committed, not even
the removal of the lost members. Stop every surviving member, run
"recover --dry-run" on each to print the last Raft index it holds, pick the
one with the highest (it holds every committed entry the survivors have),
then run this command on its data directory with the new member list,
normally that survivor alone. Recover replays the member's snapshot and
log into a fresh state, writes it as a new snapshot whose configuration is
--members, and compacts the log: every committed update, round, model and
audit leaf the member held is kept.

Then start the member with its usual flags (--bootstrap and --join are
ignored: it has state): it elects itself, removes the lost members from the
replicated member list (their keys lose trust), and other members can join
it again. Never start the lost members again with their old data: give a
returning machine an empty --data-dir and --join.

The member must be stopped: a data directory in use is refused. A log key
that does not match the cluster's checkpoints stops the recovery before
anything is written. See docs/OPERATIONS.md, "Quorum loss".`

const recoverExample = `  # c1 survived the loss of c2 and c3: make it a one-member cluster.
  mfn coordinator recover --data-dir /var/lib/mfn/c1 --dry-run
  mfn coordinator recover --data-dir /var/lib/mfn/c1 \
    --log-verifier logkey/log.vkey --members c1=10.0.0.1:7001`

type recoverFlags struct {
	dataDir, logVerifier, members string
	dryRun                        bool
}

func newCoordinatorRecoverCmd(env *cmdEnv) *cobra.Command {
	var f recoverFlags
	c := &cobra.Command{
		Use:     "recover",
		Short:   "Rebuild a stopped member's cluster configuration after quorum loss",
		Long:    recoverLong,
		Example: recoverExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRecover(env, &f)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.dataDir, "data-dir", "", "the stopped member's data directory")
	fl.StringVar(&f.logVerifier, "log-verifier", "", "file holding the cluster's log verifier key (log.vkey); the cluster origin is its name")
	fl.BoolVar(&f.dryRun, "dry-run", false, "only print the last Raft index and term the member holds; change nothing")
	fl.StringVar(&f.members, "members", "", "the new voters, id=raftaddr,... (normally this member alone, at its --raft-advertise address)")
	return c
}

func runRecover(env *cmdEnv, f *recoverFlags) error {
	if f.dataDir == "" {
		return usagef("--data-dir is required: the stopped member's data directory")
	}
	if f.dryRun {
		res, err := coordinator.Recover(coordinator.RecoverConfig{DataDir: filepath.Clean(f.dataDir), DryRun: true})
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%s: last index %d (term %d)\n", f.dataDir, res.LastIndex, res.LastTerm)
		return nil
	}
	switch {
	case f.logVerifier == "":
		return usagef("--log-verifier is required: the cluster's log.vkey")
	case f.members == "":
		return usagef("--members is required: the new voters, id=host:port,...")
	}
	servers, err := parseBootstrap(f.members)
	if err != nil {
		return usagef("--members: %v", err)
	}
	vkey, err := readKeyFile(f.logVerifier)
	if err != nil {
		return usagef("--log-verifier: %v", err)
	}
	verifier, err := audit.NewLogVerifier(vkey)
	if err != nil {
		return usagef("--log-verifier %s: %v", f.logVerifier, err)
	}
	res, err := coordinator.Recover(coordinator.RecoverConfig{
		DataDir: filepath.Clean(f.dataDir), Origin: verifier.Name(), LogVerifier: verifier, Servers: servers,
	})
	if errors.Is(err, coordinator.ErrInvalid) {
		return usagef("--members: %v", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "recovered %s: last index %d (term %d), %d audit leaves, %d jobs, %d nodes; voters now:",
		f.dataDir, res.LastIndex, res.LastTerm, res.AuditSize, res.Jobs, res.Nodes)
	for _, s := range servers {
		fmt.Fprintf(env.stdout, " %s=%s", s.ID, s.Address)
	}
	fmt.Fprintln(env.stdout)
	return nil
}
