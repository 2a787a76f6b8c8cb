package coordinator

import (
	"encoding"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// hclogValues rewrites hclog's deferred-formatting values into what they
// stand for, so that slog prints them: raft logs
// `"servers", hclog.Fmt("%+v", servers)`, which slog would otherwise
// encode as the raw slice ["%+v", ...]; and Stringers without a text or
// JSON form (raft's enums) become their String(). Other values are kept. args is
// not modified.
func hclogValues(args []any) []any {
	var out []any
	for i, v := range args {
		var s string
		switch v := v.(type) {
		case hclog.Format:
			if len(v) == 0 {
				s = ""
			} else if f, ok := v[0].(string); ok {
				s = fmt.Sprintf(f, v[1:]...)
			} else {
				s = fmt.Sprint(v...)
			}
		case hclog.Hex:
			s = fmt.Sprintf("0x%x", int(v))
		case hclog.Octal:
			s = fmt.Sprintf("0%o", int(v))
		case hclog.Binary:
			s = fmt.Sprintf("0b%b", int(v))
		case hclog.Quote:
			s = fmt.Sprintf("%q", string(v))
		case encoding.TextMarshaler, json.Marshaler, slog.LogValuer, error:
			if out != nil {
				out[i] = v
			}
			continue
		case fmt.Stringer:
			// raft's enums (ConfigurationChangeCommand, RaftState, ...)
			// would print as bare integers.
			s = v.String()
		default:
			if out != nil {
				out[i] = v
			}
			continue
		}
		if out == nil {
			out = make([]any, len(args))
			copy(out, args[:i])
		}
		out[i] = s
	}
	if out == nil {
		return args
	}
	return out
}
