package cli

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/pflag"

	"podwarden/internal/termsafe"
)

// LogFlags are the logging flags of the long-running commands (agent, nri).
type LogFlags struct {
	Format string
	Level  string
}

func (f *LogFlags) Register(fs *pflag.FlagSet) {
	fs.StringVar(&f.Format, "log-format", "json", "log format: json or text")
	fs.StringVar(&f.Level, "log-level", "info", "log level: debug, info, warn or error")
}

// New builds the slog logger the flags ask for, writing to w.
func (f *LogFlags) New(w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(f.Level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", f.Level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch f.Format {
	case "json":
		// Log lines name processes and pods, and kubectl logs puts them
		// on a terminal: C1 controls and bidi marks, which JSON leaves
		// raw, become \u escapes. slog writes a record in one Write.
		return slog.New(slog.NewJSONHandler(jsonSafeWriter{w}, opts)), nil
	case "text":
		// The text handler quotes any value holding a control character,
		// a bidi mark or invalid UTF-8 (strconv.Quote escapes them).
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", f.Format)
}

// jsonSafeWriter writes JSON records through termsafe.JSON.
type jsonSafeWriter struct{ w io.Writer }

func (j jsonSafeWriter) Write(p []byte) (int, error) {
	if _, err := j.w.Write(termsafe.JSON(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}
