package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// version is stamped at link time by `make build` and the Dockerfile:
// -ldflags "-X podwarden/internal/cli.version=$(git describe --tags --always --dirty)".
var version = "dev"

// Version is podwarden's version, e.g. for a User-Agent.
func Version() string { return version }

// BinaryVersion is what `version -o json` prints for one binary.
type BinaryVersion struct {
	Binary  string `json:"binary"`
	Version string `json:"version,omitempty"`
	Go      string `json:"go,omitempty"`
	Path    string `json:"path,omitempty"`
	Error   string `json:"error,omitempty"`
}

// versionDoc is what `version -o json` prints
// (docs/schemas/version.schema.json).
type versionDoc struct {
	TypeMeta
	BinaryVersion
	Companions []BinaryVersion `json:"companions,omitempty"`
	Warning    string          `json:"warning,omitempty"`
}

func newVersionCmd(s Streams, b Binary) *cobra.Command {
	output := ""
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary (and of the others it runs)",
		Long: `Print the version this binary was built as (make build stamps it from git).
podwarden also runs podwarden-agent and podwarden-cluster, found next to it or
on PATH, for their commands: it prints their versions too and warns when the
three differ, since they share flags and output formats.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" {
				return fmt.Errorf("--output %q: want json (or nothing for text)", output)
			}
			doc := versionDoc{BinaryVersion: BinaryVersion{Binary: b.name(), Version: version, Go: runtime.Version()}}
			for _, c := range b.Companions {
				doc.Companions = append(doc.Companions, companionVersion(cmd.Context(), c))
			}
			doc.Warning = versionSkew(doc)
			if output == "json" {
				doc.TypeMeta = Meta("Version")
				enc := json.NewEncoder(s.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(doc)
			}
			return writeVersion(s, doc)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json (default: text)")
	return cmd
}

func writeVersion(s Streams, doc versionDoc) error {
	if len(doc.Companions) == 0 {
		_, err := fmt.Fprintf(s.Out, "%s %s (%s)\n", doc.Binary, doc.Version, doc.Go)
		return err
	}
	tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BINARY\tVERSION\tGO\tPATH")
	self, _ := os.Executable()
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", doc.Binary, doc.Version, doc.Go, Dash(self))
	for _, c := range doc.Companions {
		if c.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t%s\n", c.Binary, c.Error)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Binary, c.Version, c.Go, c.Path)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if doc.Warning != "" {
		fmt.Fprintf(s.ErrOut, "warning: %s\n", doc.Warning)
	}
	return nil
}

// versionSkew says how the binaries differ, "" when they all match.
func versionSkew(doc versionDoc) string {
	var differ []string
	for _, c := range doc.Companions {
		if c.Error == "" && c.Version != doc.Version {
			differ = append(differ, fmt.Sprintf("%s is %s", c.Binary, c.Version))
		}
	}
	if len(differ) == 0 {
		return ""
	}
	return fmt.Sprintf("%s is %s but %s: they share flags and output formats, so install all three from one build (make build)",
		doc.Binary, doc.Version, strings.Join(differ, ", "))
}

// companionVersion runs `binary version -o json`, bounded in time: a
// broken binary must not hang `podwarden version`.
func companionVersion(ctx context.Context, binary string) BinaryVersion {
	v := BinaryVersion{Binary: binary}
	path, err := FindCompanion(binary)
	if err != nil {
		v.Error = "not found next to this binary or on PATH"
		return v
	}
	v.Path = path
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	c := exec.CommandContext(ctx, path, "version", "-o", "json")
	c.Stdout, c.Stderr = &out, &errOut
	if err := c.Run(); err != nil {
		v.Error = fmt.Sprintf("running %s version: %v %s", path, err, strings.TrimSpace(errOut.String()))
		return v
	}
	var got BinaryVersion
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		v.Error = fmt.Sprintf("reading %s version: %v", path, err)
		return v
	}
	v.Version, v.Go = got.Version, got.Go
	return v
}

// FindCompanion finds another podwarden binary: next to this one first
// (make build and the release put all three in one directory), then on
// PATH.
func FindCompanion(binary string) (string, error) {
	if self, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(self), binary); isExecutable(p) {
			return p, nil
		}
	}
	return exec.LookPath(binary)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
