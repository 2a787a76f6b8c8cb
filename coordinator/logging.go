package coordinator

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter lets raft (which logs through hclog) write to a log/slog
// logger, so a coordinator has one log stream with one format.
type hclogAdapter struct {
	l     *slog.Logger
	name  string
	args  []any
	level *atomic.Int32 // hclog.Level, shared with loggers derived by With/Named
}

// newHclog returns an hclog.Logger that forwards to l at level lvl and above.
func newHclog(l *slog.Logger, name string, lvl hclog.Level) hclog.Logger {
	a := &hclogAdapter{l: l, name: name, level: new(atomic.Int32)}
	a.level.Store(int32(lvl))
	return a
}

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Info, hclog.NoLevel, hclog.DefaultLevel:
		return slog.LevelInfo
	case hclog.Warn:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level < hclog.Level(a.level.Load()) {
		return
	}
	all := make([]any, 0, len(a.args)+len(args)+2)
	if a.name != "" {
		all = append(all, "logger", a.name)
	}
	all = append(all, a.args...)
	all = append(all, hclogValues(args)...)
	a.l.Log(context.Background(), slogLevel(level), msg, all...)
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }
func (a *hclogAdapter) IsTrace() bool                 { return hclog.Level(a.level.Load()) <= hclog.Trace }
func (a *hclogAdapter) IsDebug() bool                 { return hclog.Level(a.level.Load()) <= hclog.Debug }
func (a *hclogAdapter) IsInfo() bool                  { return hclog.Level(a.level.Load()) <= hclog.Info }
func (a *hclogAdapter) IsWarn() bool                  { return hclog.Level(a.level.Load()) <= hclog.Warn }
func (a *hclogAdapter) IsError() bool                 { return hclog.Level(a.level.Load()) <= hclog.Error }
func (a *hclogAdapter) ImpliedArgs() []any            { return a.args }
func (a *hclogAdapter) Name() string                  { return a.name }
func (a *hclogAdapter) SetLevel(l hclog.Level)        { a.level.Store(int32(l)) }
func (a *hclogAdapter) GetLevel() hclog.Level         { return hclog.Level(a.level.Load()) }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	c := *a
	c.args = append(append([]any{}, a.args...), args...)
	return &c
}

func (a *hclogAdapter) Named(name string) hclog.Logger {
	c := *a
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	return &c
}

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		a.Info(string(trimNewline(p)))
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}

var _ hclog.Logger = (*hclogAdapter)(nil)

// discardLogger is used when Config.Logger is nil.
var discardLogger = slog.New(slog.DiscardHandler)

func errAttr(err error) slog.Attr { return slog.String("err", fmt.Sprint(err)) }
