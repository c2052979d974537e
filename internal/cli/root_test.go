package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func runForTest(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), args, Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	return out.String(), errOut.String(), code
}

func TestVersion(t *testing.T) {
	out, _, code := runForTest(t, "version")
	if code != 0 || !strings.HasPrefix(out, "podwarden ") {
		t.Fatalf("version: code %d, out %q", code, out)
	}
}

func TestUnknownCommand(t *testing.T) {
	_, errOut, code := runForTest(t, "no-such-command")
	if code == 0 || !strings.Contains(errOut, "no-such-command") {
		t.Fatalf("unknown command: code %d, stderr %q", code, errOut)
	}
}

// -v means one thing: kubectl has no -v for a version, and agent takes it
// for --verbose; the root answers only --version.
func TestVersionFlagHasNoShorthand(t *testing.T) {
	out, _, code := runForTest(t, "--version")
	if code != 0 || !strings.HasPrefix(out, "podwarden version ") {
		t.Fatalf("--version: code %d, out %q", code, out)
	}
	if _, errOut, code := runForTest(t, "-v"); code != 1 || !strings.Contains(errOut, "unknown shorthand flag: 'v'") {
		t.Errorf("-v: code %d, stderr %q", code, errOut)
	}
}
