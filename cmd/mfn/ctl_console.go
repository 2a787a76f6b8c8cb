package main

import (
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/mfn/mfn/console"
)

func newCtlConsoleCmd(env *cmdEnv, o *ctlOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "console",
		Short: "Print a one-time login link to the member's web console",
		Long: `console asks the member for a one-time login link to its web console (/ui/)
for the --api-key in use, and prints it. Opening the link in a browser logs in
with that key's role (reader: view; operator: + stop jobs, revoke nodes) and
sets a session cookie; the link works once and for a few minutes (5 by default),
and only on the member that made it. --json prints the link, its expiry and
the key's name and role.`,
		Example: "  mfn ctl --server http://127.0.0.1:8080 --api-key $KEY console\n  mfn ctl console --json",
		Args:    cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			cl, err := o.client()
			if err != nil {
				return err
			}
			tlsConf, err := o.tlsConfig()
			if err != nil {
				return err
			}
			hc := &http.Client{Timeout: o.timeout}
			if tlsConf != nil {
				tr := http.DefaultTransport.(*http.Transport).Clone()
				tr.TLSClientConfig = tlsConf
				hc.Transport = tr
			}
			link, l, err := console.RequestLoginLink(env.ctx, hc, cl.Server(), o.apiKey)
			if err != nil {
				return err
			}
			if o.asJSON {
				return printJSON(env.stdout, map[string]any{"url": link, "expires": l.Expires, "key": l.Key, "role": l.Role})
			}
			fmt.Fprintf(env.stdout, "%s\n(one use, until %s, as key %s with role %s)\n", link, l.Expires.Format("15:04:05 MST"), l.Key, l.Role)
			return nil
		},
	}
}
