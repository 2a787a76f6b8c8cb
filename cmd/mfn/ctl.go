package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mfn/mfn/coordinator/api"
	mfncrypto "github.com/mfn/mfn/crypto"
)

func init() { registerCommand(newCtlCmd) }

const ctlLong = `ctl drives a coordinator cluster through its HTTP API: cluster membership,
node enrolment, training jobs, rounds, models and the audit log.

--server is the URL of any member (http://host:port or https://host:port;
"host:port" means http). For an HTTPS member, trust its certificate with
--pin mfn-ed25519:<key> (a member started with --http-tls-self-signed: its
coordinator key, as in the cluster's peer key list; several may be given),
--ca FILE (a CA that signed the member's certificate, or the member's own
DATA/http-cert.pem), or, for tests only, --insecure-skip-verify; without
them the system's roots are used. A follower forwards writes and current reads to the leader, so any
member will do. --api-key is sent as X-API-Key; its role decides what is
allowed (reader: read; auditor: + audit; operator: + nodes and jobs; admin:
+ cluster membership). Both are usually set once in the environment as
MFN_SERVER and MFN_API_KEY.

Read commands print tables, or the API's JSON with --json. Errors from the
server are printed with their HTTP status, error code, message and request
id (quote it when asking an operator to look at the logs).

Exit codes: 0 success; 1 the server refused or failed the request, or could
not be reached; 2 bad flags or arguments.`

// ctlOpts are the flags shared by every ctl command.
type ctlOpts struct {
	server   string
	apiKey   string
	timeout  time.Duration
	asJSON   bool
	ca       string
	pins     []string
	insecure bool
}

// client builds the API client from the shared flags.
func (o *ctlOpts) client() (*api.Client, error) {
	if o.server == "" {
		return nil, usagef("--server is required (or set MFN_SERVER): the URL of any coordinator member, e.g. http://127.0.0.1:8080")
	}
	if o.timeout <= 0 {
		return nil, usagef("--timeout %v: must be > 0", o.timeout)
	}
	tlsConf, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: o.timeout}
	if tlsConf != nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tlsConf
		hc.Transport = tr
	}
	cl, err := api.NewClient(o.server, o.apiKey, hc)
	if err != nil {
		return nil, usagef("--server %q: %v", o.server, strings.TrimPrefix(err.Error(), "api: "))
	}
	// A leader elected a moment ago may not have registered its HTTP
	// address yet, so a follower cannot forward to it (503 not_leader):
	// a few retries cover that window.
	return cl.WithRetries(5), nil
}

// tlsConfig builds the TLS client configuration of --ca, --pin and
// --insecure-skip-verify; nil means Go's defaults (the system's roots).
func (o *ctlOpts) tlsConfig() (*tls.Config, error) {
	set := 0
	for _, b := range []bool{o.ca != "", len(o.pins) > 0, o.insecure} {
		if b {
			set++
		}
	}
	if set > 1 {
		return nil, usagef("--ca, --pin and --insecure-skip-verify are exclusive: choose one way to trust the server")
	}
	switch {
	case o.ca != "":
		b, err := os.ReadFile(o.ca)
		if err != nil {
			return nil, usagef("--ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, usagef("--ca %s: no PEM certificate in the file", o.ca)
		}
		return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}, nil
	case len(o.pins) > 0:
		var keys []ed25519.PublicKey
		for _, p := range o.pins {
			k, err := mfncrypto.ParsePublicKey(strings.TrimSpace(p))
			if err != nil {
				return nil, usagef("--pin %q: want mfn-ed25519:<base64> (a coordinator's signing.pub): %v", p, err)
			}
			keys = append(keys, k)
		}
		return &tls.Config{
			MinVersion: tls.VersionTLS13,
			// The server is identified by its key, not by a CA or a name:
			// VerifyPeerCertificate below replaces chain verification.
			InsecureSkipVerify: true,
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 {
					return errors.New("server sent no certificate")
				}
				cert, err := x509.ParseCertificate(raw[0])
				if err != nil {
					return err
				}
				pub, ok := cert.PublicKey.(ed25519.PublicKey)
				if ok && slices.ContainsFunc(keys, func(k ed25519.PublicKey) bool { return k.Equal(pub) }) {
					return nil
				}
				return fmt.Errorf("server certificate key is not one of the --pin keys (its key: %s)", describeKey(cert))
			},
		}, nil
	case o.insecure:
		return &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}, nil
	}
	return nil, nil
}

// describeKey names a certificate's key for an error message.
func describeKey(cert *x509.Certificate) string {
	if pub, ok := cert.PublicKey.(ed25519.PublicKey); ok {
		return mfncrypto.FormatPublicKey(pub)
	}
	return cert.PublicKeyAlgorithm.String() + " key"
}

// ctlError turns a client error into the message ctl prints.
func ctlError(cl *api.Client, err error) error {
	var ae *api.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ae):
		return fmt.Errorf("server answered %w", ae)
	case errors.Is(err, api.ErrUnreachable):
		return fmt.Errorf("cannot reach the server at %s: %v", cl.Server(), causeOf(err))
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the server at %s did not answer in time (see --timeout)", cl.Server())
	}
	return err
}

// causeOf strips the client's prefix from a transport error.
func causeOf(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.HasPrefix(msg, "api: server unreachable") {
		// "api: server unreachable: GET host: <cause>"
		parts := strings.SplitN(msg, ": ", 4)
		if len(parts) == 4 {
			return parts[3]
		}
	}
	return msg
}

// printJSON writes v indented.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table returns a tab writer for aligned columns.
func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// writeOutput writes data to path atomically (a temporary file renamed
// into place), or to w when path is empty.
func writeOutput(w io.Writer, path string, data []byte) error {
	if path == "" {
		_, err := w.Write(data)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func parseUint(arg, name string) (uint64, error) {
	v, err := strconv.ParseUint(arg, 10, 64)
	if err != nil {
		return 0, usagef("%s %q: want a non-negative integer", name, arg)
	}
	return v, nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func newCtlCmd(env *cmdEnv) *cobra.Command {
	o := &ctlOpts{}
	c := &cobra.Command{
		Use:   "ctl",
		Short: "Operate a coordinator cluster through its HTTP API",
		Long:  ctlLong,
		Example: `  export MFN_SERVER=http://127.0.0.1:8080 MFN_API_KEY=...
  mfn ctl cluster status
  mfn ctl nodes enroll --identity ./node1
  mfn ctl jobs create --id mnist-1 --task mnist --dim 7850 --rule krum --f 2 --rounds 20 --min-updates 8 --max-updates 10 --round-deadline 2m
  mfn ctl rounds get mnist-1 3
  mfn ctl models get mnist-1 latest --out model.f64
  mfn ctl audit export --out ./auditlog`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	pf := c.PersistentFlags()
	pf.StringVar(&o.server, "server", "", "URL of any coordinator member's HTTP API, e.g. http://127.0.0.1:8080 (env MFN_SERVER)")
	pf.StringVar(&o.apiKey, "api-key", "", "API key sent as X-API-Key (env MFN_API_KEY)")
	pf.DurationVar(&o.timeout, "timeout", 30*time.Second, "timeout of each request to the server, > 0")
	pf.BoolVar(&o.asJSON, "json", false, "print the API's JSON instead of a table")
	pf.StringVar(&o.ca, "ca", "", "PEM file of the CA certificates that sign the server's HTTPS certificate (e.g. a member's DATA/http-cert.pem)")
	pf.StringSliceVar(&o.pins, "pin", nil, "trust an HTTPS server whose certificate carries one of these coordinator keys (mfn-ed25519:<base64>, repeatable; for --http-tls-self-signed members)")
	pf.BoolVar(&o.insecure, "insecure-skip-verify", false, "accept any HTTPS certificate (testing only: the API key is exposed to whoever answers)")
	c.AddCommand(newCtlClusterCmd(env, o), newCtlNodesCmd(env, o), newCtlJobsCmd(env, o), newCtlRoundsCmd(env, o),
		newCtlModelsCmd(env, o), newCtlAuditCmd(env, o), newCtlEventsCmd(env, o), newCtlConsoleCmd(env, o),
		newCtlOpenAPICmd(env, o))
	return c
}

// ---- cluster ----

func newCtlClusterCmd(env *cmdEnv, o *ctlOpts) *cobra.Command {
	c := &cobra.Command{
		Use:   "cluster",
		Short: "Show the cluster or remove a member",
		Long: `cluster status shows the members (Raft, QUIC and HTTP addresses, Ed25519
key, suffrage) and who leads, as the member at --server sees them (reader);
an address or key the member has not registered yet shows as "-". cluster
remove ID takes a
member out of the cluster (admin); the data directory of a removed member must
be wiped before it joins again.`,
		Example: "  mfn ctl cluster status\n  mfn ctl cluster remove c3",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	status := &cobra.Command{
		Use:     "status",
		Short:   "Show members, leader and Raft state",
		Long:    "status prints the cluster as the member at --server sees it.",
		Example: "  mfn ctl cluster status --json",
		Args:    cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			cl, err := o.client()
			if err != nil {
				return err
			}
			st, err := cl.Cluster(env.ctx)
			if err != nil {
				return ctlError(cl, err)
			}
			if o.asJSON {
				return printJSON(env.stdout, st)
			}
			leader := st.LeaderID
			if leader == "" {
				leader = "(none known)"
			}
			fmt.Fprintf(env.stdout, "member %s: %s, term %d, commit %d, applied %d, audit leaves %d; leader %s\n",
				st.ID, st.State, st.Term, st.CommitIndex, st.AppliedIndex, st.AuditSize, leader)
			tw := table(env.stdout)
			fmt.Fprintln(tw, "ID\tROLE\tSUFFRAGE\tRAFT\tQUIC\tHTTP\tKEY")
			for _, m := range st.Members {
				role := "follower"
				if m.Leader {
					role = "leader"
				}
				key := "-"
				if len(m.PublicKey) == ed25519.PublicKeySize {
					key = mfncrypto.FormatPublicKey(ed25519.PublicKey(m.PublicKey))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, role, m.Suffrage, m.RaftAddr, dash(m.QUICAddr), dash(m.HTTPAddr), key)
			}
			return tw.Flush()
		},
	}
	remove := &cobra.Command{
		Use:     "remove ID",
		Short:   "Remove a member from the cluster (admin)",
		Long:    "remove takes the member ID out of the Raft configuration and the member list.",
		Example: "  mfn ctl cluster remove c3",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cl, err := o.client()
			if err != nil {
				return err
			}
			if err := cl.RemoveMember(env.ctx, args[0]); err != nil {
				return ctlError(cl, err)
			}
			fmt.Fprintf(env.stdout, "removed member %s\n", args[0])
			return nil
		},
	}
	c.AddCommand(status, remove)
	return c
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
