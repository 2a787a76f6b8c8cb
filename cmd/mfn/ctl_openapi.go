package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newCtlOpenAPICmd(env *cmdEnv, o *ctlOpts) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "openapi",
		Short: "Fetch the member's OpenAPI 3.1 document",
		Long: `openapi fetches GET /openapi.json, the OpenAPI 3.1 description of every
route of the operator API (roles in x-mfn-role, rate classes in
x-mfn-rate-class, bodies and errors), and prints it or, with --out FILE,
writes it atomically. The route needs no API key.`,
		Example: "  mfn ctl --server http://127.0.0.1:8080 openapi --out mfn-openapi.json",
		Args:    cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			cl, err := o.client()
			if err != nil {
				return err
			}
			doc, err := cl.OpenAPI(env.ctx)
			if err != nil {
				return ctlError(cl, err)
			}
			if len(doc) > 0 && doc[len(doc)-1] != '\n' {
				doc = append(doc, '\n')
			}
			if err := writeOutput(env.stdout, out, doc); err != nil {
				return err
			}
			if out != "" {
				fmt.Fprintf(env.stderr, "wrote %s: %d bytes\n", out, len(doc))
			}
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "write the document to FILE instead of standard output")
	return c
}
