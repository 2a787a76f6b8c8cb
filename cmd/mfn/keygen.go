package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	mfncrypto "github.com/mfn/mfn/crypto"
	"github.com/spf13/cobra"
)

func init() { registerCommand(newKeygenCmd) }

const keygenLong = `keygen creates the key files of one MFN identity in a directory.

Every role gets an Ed25519 signing key: nodes sign their update statements
with it and present it in their TLS certificate; coordinators use theirs for
TLS. Coordinators also get an age X25519 identity: nodes seal their updates
to every coordinator's age recipient.

Files written to --out (created with mode 0700):
  signing.key  Ed25519 private key, PEM PKCS #8        (mode 0600)
  signing.pub  mfn-ed25519:<base64 public key>         (mode 0644)
  age.key      age identity, AGE-SECRET-KEY-1...        (mode 0600, coordinator)
  age.pub      age recipient, age1...                   (mode 0644, coordinator)

keygen never overwrites a file: if any of them exists it writes nothing and
fails. It prints the public values to share: the id (a fingerprint of the
signing key, which is a node's default node id), the signing public key and, for coordinators, the age
recipient. "keygen --show DIR" prints them again from the public files of
an existing directory; --json prints them as a JSON object instead.`

const keygenExample = `  mfn keygen --role node --out ./node-keys
  mfn keygen --role coordinator --out /etc/mfn/keys
  mfn keygen --show ./node-keys --json`

// keygenOutput is what keygen prints, also as JSON.
type keygenOutput struct {
	Role         string `json:"role"`
	ID           string `json:"id"`
	SigningKey   string `json:"signing_key"`
	AgeRecipient string `json:"age_recipient,omitempty"`
}

func newKeygenCmd(env *cmdEnv) *cobra.Command {
	var role, out, show string
	var asJSON bool
	c := &cobra.Command{
		Use:     "keygen",
		Short:   "Create a node or coordinator identity (Ed25519 signing key, age key)",
		Long:    keygenLong,
		Example: keygenExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if show != "" {
				if onCommandLine(cmd.Flags(), "out") || onCommandLine(cmd.Flags(), "role") {
					return usagef("--show reads an existing directory; it cannot be combined with --out or --role")
				}
				pub, err := mfncrypto.LoadPublicIdentity(show)
				if err != nil {
					if errors.Is(err, fs.ErrNotExist) {
						return fmt.Errorf("--show %s: no identity there (%s missing)", show, mfncrypto.SigningPubFile)
					}
					return fmt.Errorf("--show %s: %w", show, err)
				}
				return printKeygen(env.stdout, pub, asJSON)
			}
			r, err := mfncrypto.ParseRole(role)
			if err != nil {
				return usagef("--role %q: must be one of node, coordinator", role)
			}
			if out == "" {
				return usagef("--out is required: the directory to write the key files to")
			}
			id, err := mfncrypto.GenerateIdentity(r, rand.Reader)
			if err != nil {
				return err
			}
			if err := mfncrypto.SaveIdentity(out, id); err != nil {
				return err
			}
			if !asJSON {
				abs, _ := filepath.Abs(out)
				fmt.Fprintf(env.stderr, "wrote %s identity to %s\n", r, abs)
			}
			return printKeygen(env.stdout, id.Public(), asJSON)
		},
	}
	c.Flags().StringVar(&role, "role", "", "identity role: node or coordinator")
	c.Flags().StringVar(&out, "out", "", "directory to write the key files to (created if missing)")
	c.Flags().StringVar(&show, "show", "", "print the public keys of the identity in this directory instead of creating one")
	c.Flags().BoolVar(&asJSON, "json", false, "print the public keys as a JSON object")
	return c
}

func printKeygen(w io.Writer, pub *mfncrypto.PublicIdentity, asJSON bool) error {
	o := keygenOutput{
		Role:       string(pub.Role),
		ID:         pub.NodeID(),
		SigningKey: mfncrypto.FormatPublicKey(pub.SigningKey),
	}
	if pub.Recipient != nil {
		o.AgeRecipient = pub.Recipient.String()
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(o)
	}
	fmt.Fprintf(w, "role:          %s\n", o.Role)
	fmt.Fprintf(w, "id:            %s\n", o.ID)
	fmt.Fprintf(w, "signing key:   %s\n", o.SigningKey)
	if o.AgeRecipient != "" {
		fmt.Fprintf(w, "age recipient: %s\n", o.AgeRecipient)
	}
	return nil
}
