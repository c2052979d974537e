package lineage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// secret is what a hostile lineage directory tries to smuggle into a
// pushed layer: a file outside the lineage file's directory.
const secret = "host secret: do not push\n"

// lineageWithSource writes a lineage file with one file patch whose source
// is src into dir and returns its path.
func lineageWithSource(t *testing.T, dir, src string) string {
	t.Helper()
	p := filepath.Join(dir, "lineage.yaml")
	in := fmt.Sprintf("schema: 1\nfamilies: {}\npatches:\n  - id: a\n    files:\n      - path: /x\n        source: %q\n", src)
	if err := os.WriteFile(p, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// TestLoadRefusesSources: a source that is a link, goes through a link,
// leaves the directory or is not a regular file is refused with its path
// named, and its content is never read.
func TestLoadRefusesSources(t *testing.T) {
	for name, tc := range map[string]struct {
		src   string
		setup func(t *testing.T, dir, outside string)
		want  string // in the one error line, after the location
	}{
		"symlink to a file outside": {"files/pod-start", func(t *testing.T, dir, outside string) {
			symlink(t, filepath.Join(outside, "secret"), filepath.Join(dir, "files/pod-start"))
		}, `source: "files/pod-start" is a symbolic link`},
		"relative symlink out": {"pod-start", func(t *testing.T, dir, outside string) {
			rel, _ := filepath.Rel(dir, filepath.Join(outside, "secret"))
			symlink(t, rel, filepath.Join(dir, "pod-start"))
		}, `source: "pod-start" is a symbolic link`},
		"symlink to a file inside": {"pod-start", func(t *testing.T, dir, _ string) {
			write(t, filepath.Join(dir, "real"), "inside\n")
			symlink(t, "real", filepath.Join(dir, "pod-start"))
		}, `source: "pod-start" is a symbolic link`},
		"symlinked parent directory": {"files/secret", func(t *testing.T, dir, outside string) {
			symlink(t, outside, filepath.Join(dir, "files"))
		}, `source: "files/secret": "files" is a symbolic link`},
		"symlinked grandparent directory": {"a/b/secret", func(t *testing.T, dir, outside string) {
			if err := os.MkdirAll(filepath.Join(outside, "b"), 0o755); err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(outside, "b/secret"), secret)
			symlink(t, outside, filepath.Join(dir, "a"))
		}, `source: "a/b/secret": "a" is a symbolic link`},
		"dot-dot out through a directory": {"a/../../secret", func(t *testing.T, dir, _ string) {
			if err := os.MkdirAll(filepath.Join(dir, "a"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, `source: "a/../../secret" must be a path relative to the lineage file, inside its directory`},
		"dot-dot through a symlink": {"a/../secret", func(t *testing.T, dir, outside string) {
			// Lexically a/../secret is ./secret; the kernel would
			// resolve a first and land in outside's parent.
			symlink(t, outside, filepath.Join(dir, "a"))
			write(t, filepath.Join(dir, "secret"), "decoy\n")
		}, `source: "a/../secret" must not contain ".."`},
		"directory": {"files", func(t *testing.T, dir, _ string) {
			write(t, filepath.Join(dir, "files/x"), "x")
		}, `source: "files" is a directory: a source must be a regular file`},
		"fifo": {"fifo", func(t *testing.T, dir, _ string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, `source: "fifo" is not a regular file`},
	} {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			dir, outside := filepath.Join(base, "lineage"), filepath.Join(base, "outside")
			write(t, filepath.Join(outside, "secret"), secret)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, dir, outside)
			lf := lineageWithSource(t, dir, tc.src)
			l, err := loadWithin(t, lf, 30*time.Second)
			if err == nil {
				t.Fatalf("Load succeeded, patch content %q", l.Patches[0].Files[0].Content)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if want := "lineage.yaml:7: patches.a.files[0]." + tc.want; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error:\n%v\nwant it to start with:\n%s", err, want)
			}
			if strings.Contains(err.Error(), strings.TrimSpace(secret)) {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}
}

// loadWithin runs Load and fails the test if it does not return within d:
// opening a FIFO for reading blocks until a writer comes.
func loadWithin(t *testing.T, path string, d time.Duration) (*Lineage, error) {
	t.Helper()
	type result struct {
		l   *Lineage
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := Load(path)
		done <- result{l, err}
	}()
	select {
	case r := <-done:
		return r.l, r.err
	case <-time.After(d):
		t.Fatalf("Load(%s) did not return within %s", path, d)
		return nil, nil
	}
}

// TestLoadThroughLinkedDirectory: the lineage file's own directory may be
// reached through links (a ConfigMap volume's ..data); only what is below
// it is checked.
func TestLoadThroughLinkedDirectory(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "..2026_12_07")
	write(t, filepath.Join(real, "files/pod-start"), "#!/bin/sh\n")
	lineageWithSource(t, real, "files/pod-start")
	symlink(t, real, filepath.Join(base, "..data"))
	l, err := Load(filepath.Join(base, "..data", "lineage.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(l.Patches[0].Files[0].Content); got != "#!/bin/sh\n" {
		t.Errorf("content %q", got)
	}
}

// TestLoadSourceRace swaps a source between a regular file and a symlink
// to a secret outside the directory while Load runs: no load may ever
// return the secret, however the swap and the checks interleave.
func TestLoadSourceRace(t *testing.T) {
	base := t.TempDir()
	dir, outside := filepath.Join(base, "lineage"), filepath.Join(base, "outside")
	write(t, filepath.Join(outside, "secret"), secret)
	write(t, filepath.Join(dir, "pod-start"), "harmless\n")
	lf := lineageWithSource(t, dir, "pod-start")
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		src := filepath.Join(dir, "pod-start")
		for i := 0; !stop.Load(); i++ {
			tmp := filepath.Join(dir, fmt.Sprintf(".swap%d", i))
			var err error
			if i%2 == 0 {
				err = os.Symlink(filepath.Join(outside, "secret"), tmp)
			} else {
				err = os.WriteFile(tmp, []byte("harmless\n"), 0o644)
			}
			if err == nil {
				err = os.Rename(tmp, src) // atomic: src is always one or the other
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { stop.Store(true); wg.Wait() }()
	var loaded, refused int
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) || loaded == 0 || refused == 0 {
		if time.Now().After(deadline.Add(time.Minute)) {
			break // a very busy machine: the swaps above are what matter
		}
		l, err := Load(lf)
		if err != nil {
			if !strings.Contains(err.Error(), `"pod-start"`) {
				t.Fatalf("refusal does not name the source: %v", err)
			}
			refused++
			continue
		}
		if c := l.Patches[0].Files[0].Content; bytes.Equal(c, []byte(secret)) {
			t.Fatalf("load %d read the secret through the swapped-in symlink", loaded+refused)
		}
		loaded++
	}
	t.Logf("%d loads read the regular file, %d were refused", loaded, refused)
}
