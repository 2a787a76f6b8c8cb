package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	mfncrypto "github.com/mfn/mfn/crypto"
	"github.com/mfn/mfn/provision"
)

func init() { registerCommand(newProvisionCmd) }

const provisionLong = `provision reads a project file (project.toml) describing a whole
federation and writes one kit per participant into --out:

  coordinators/ID/  keys/, logkey/, peers.txt, api-keys.toml (digests only),
                    cluster.txt, coordinator.toml, start.sh, a systemd unit
  sites/ID/         keys/, cluster.txt (pinned keys, age recipients),
                    node.toml, enrolment.txt, start.sh, a systemd unit
  operators/NAME/   ctl.toml (server, API key, pinned coordinator keys),
                    log.vkey, enrolment.txt (every site, for auditors)
  enrolment.txt, cluster.txt, log.vkey   the same, for the project owner

Every kit has a MANIFEST.sha256 ("sha256sum -c MANIFEST.sha256" or
"mfn provision verify DIR" checks it). Secrets are mode 0600 in folders of
mode 0700. The generated secrets are kept in --out/.provision, so running
provision again with the same project file changes nothing; a file that
would change is refused unless --force. A participant whose project entry
gives public_key (and age_recipient, for a coordinator) brought its own keys
from "mfn keygen" on its machine: its kit holds only the public halves.

Project file (keys not shown take defaults: ports 7001/4431/8081, http_tls
"self-signed", install_dir /etc/mfn, binary /usr/local/bin/mfn):

  origin = "mfn.example/cluster-1"
  [node_flags]
  samples = 200
  [[coordinators]]
  id = "c1"
  host = "10.0.0.1"
  [[coordinators]]
  id = "c2"
  host = "10.0.0.2"
  public_key = "mfn-ed25519:..."      # bring your own keys
  age_recipient = "age1..."
  [[sites]]
  id = "site-01"
  flags = { regime-mix = "4,1,1,1" }
  [[operators]]
  name = "admin"
  role = "admin"

"provision add-site NAME" appends a site to the project file and writes
its kit; the operator then enrols it with "mfn ctl nodes enroll --kit DIR".`

const provisionExample = `  mfn provision --project project.toml --out kits
  mfn provision add-site site-09 --project project.toml --out kits
  mfn provision verify kits/sites/site-09`

func newProvisionCmd(env *cmdEnv) *cobra.Command {
	var project, out string
	var force bool
	c := &cobra.Command{
		Use:     "provision",
		Short:   "Write every participant's kit (keys, configs, start scripts) from a project file",
		Long:    provisionLong,
		Example: provisionExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if project == "" || out == "" {
				return usagef("--project and --out are required")
			}
			p, err := provision.LoadProject(project)
			if err != nil {
				return provisionErr("--project", err)
			}
			return runProvision(env, p, out, force)
		},
	}
	c.PersistentFlags().StringVar(&project, "project", "", "the project file (TOML)")
	c.PersistentFlags().StringVar(&out, "out", "", "folder to write the kits to")
	c.PersistentFlags().BoolVar(&force, "force", false, "replace kit files whose content differs from what the project gives")

	var pubKey string
	addSite := &cobra.Command{
		Use:   "add-site NAME",
		Short: "Add a site to the project file and write its kit",
		Long: `add-site appends a [[sites]] entry named NAME to --project (the rest of the
file is kept) and writes the new kit; the other kits are left unchanged.
With --public-key the site brought its own key (mfn keygen --role node on
its machine) and its kit holds no private key.`,
		Example: "  mfn provision add-site site-09 --project project.toml --out kits\n  mfn provision add-site site-10 --project project.toml --out kits --public-key mfn-ed25519:...",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if project == "" || out == "" {
				return usagef("--project and --out are required")
			}
			if pubKey != "" {
				if _, err := mfncrypto.ParsePublicKey(pubKey); err != nil {
					return usagef("--public-key: %v", err)
				}
			}
			p, err := provision.AddSite(project, args[0], pubKey)
			if err != nil {
				return provisionErr("NAME", err)
			}
			return runProvision(env, p, out, force)
		},
	}
	addSite.Flags().StringVar(&pubKey, "public-key", "", `the site's own signing key "mfn-ed25519:<base64>" (empty: generate one)`)

	verify := &cobra.Command{
		Use:     "verify DIR",
		Short:   "Check a kit's files against its MANIFEST.sha256",
		Long:    "verify checks every file of the kit in DIR against its manifest and lists the files that are absent (private keys a participant keeps elsewhere).",
		Example: "  mfn provision verify kits/sites/site-01",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			missing, err := provision.VerifyKit(args[0])
			if err != nil {
				return err
			}
			for _, m := range missing {
				fmt.Fprintf(env.stdout, "absent %s\n", m)
			}
			fmt.Fprintf(env.stdout, "ok %s\n", args[0])
			return nil
		},
	}
	c.AddCommand(addSite, verify)
	return c
}

func runProvision(env *cmdEnv, p *provision.Project, out string, force bool) error {
	res, err := provision.Provision(p, provision.Options{Out: out, Force: force})
	if err != nil {
		return err
	}
	kits := map[string]bool{}
	for _, f := range append(append(append([]string{}, res.Created...), res.Replaced...), res.Extended...) {
		if dir, _, ok := strings.Cut(filepath.ToSlash(f), "/"); ok {
			if kind, rest, ok := strings.Cut(f[len(dir)+1:], "/"); ok && rest != "" {
				kits[dir+"/"+kind] = true
			}
		}
	}
	for _, k := range sortedSet(kits) {
		fmt.Fprintf(env.stdout, "wrote %s\n", filepath.Join(out, k))
	}
	for _, f := range res.Extended {
		if filepath.Base(f) == "api-keys.toml" {
			fmt.Fprintf(env.stdout, "note: %s has new API keys: restart that coordinator to load them\n", filepath.Join(out, f))
		}
	}
	fmt.Fprintf(env.stdout, "%d files created, %d extended, %d replaced, %d unchanged in %s\n", len(res.Created), len(res.Extended), len(res.Replaced), len(res.Unchanged), out)
	return nil
}

func sortedSet(m map[string]bool) []string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// provisionErr makes an invalid project a usage error naming where.
func provisionErr(where string, err error) error {
	if errors.Is(err, provision.ErrProject) || errors.Is(err, fs.ErrNotExist) {
		return usagef("%s: %v", where, err)
	}
	return err
}
