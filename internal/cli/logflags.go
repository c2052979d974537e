package cli

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/pflag"
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
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", f.Format)
}
