package overlay

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

var patched = []string{"/etc/motd", "/usr/local/bin/pod-start"}

func findings(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "%s <- %s (%s): %s\n", f.File, f.Entry.Path, f.Entry.Type, f.Why)
	}
	return b.String()
}

func TestHiddenTar(t *testing.T) {
	for name, tc := range map[string]struct {
		hdrs []*tar.Header
		want string
	}{
		"unrelated": {[]*tar.Header{{Name: "home/user/x", Typeflag: tar.TypeReg}, {Name: "usr/", Typeflag: tar.TypeDir}}, ""},
		"own file": {[]*tar.Header{{Name: "etc/motd", Typeflag: tar.TypeReg}},
			"/etc/motd <- /etc/motd (file): the backup's own file replaces the patched file\n"},
		"oci whiteout": {[]*tar.Header{{Name: "etc/.wh.motd", Typeflag: tar.TypeReg}},
			"/etc/motd <- /etc/motd (whiteout): whiteout deletes the patched file\n"},
		"overlay whiteout": {[]*tar.Header{{Name: "usr/local/bin/pod-start", Typeflag: tar.TypeChar}},
			"/usr/local/bin/pod-start <- /usr/local/bin/pod-start (whiteout): whiteout deletes the patched file\n"},
		"char device not 0/0": {[]*tar.Header{{Name: "etc/motd", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}},
			"/etc/motd <- /etc/motd (other): the backup's own other replaces the patched file\n"},
		"parent whiteout": {[]*tar.Header{{Name: "usr/local/.wh.bin", Typeflag: tar.TypeReg}},
			"/usr/local/bin/pod-start <- /usr/local/bin (whiteout): whiteout deletes a parent directory\n"},
		"oci opaque": {[]*tar.Header{{Name: "usr/local/bin/.wh..wh..opq", Typeflag: tar.TypeReg}},
			"/usr/local/bin/pod-start <- /usr/local/bin (opaque): opaque directory hides the lower layers below it\n"},
		"xattr opaque": {[]*tar.Header{{Name: "etc/", Typeflag: tar.TypeDir, Format: tar.FormatPAX,
			PAXRecords: map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y"}}},
			"/etc/motd <- /etc (opaque): opaque directory hides the lower layers below it\n"},
		"symlink parent": {[]*tar.Header{{Name: "usr/local", Typeflag: tar.TypeSymlink, Linkname: "/opt"}},
			"/usr/local/bin/pod-start <- /usr/local (symlink): symlink stands where a parent directory should be\n"},
		"prefix is not parent": {[]*tar.Header{{Name: "etc/motd.d/.wh.x", Typeflag: tar.TypeReg}, {Name: "etc/.wh.mot", Typeflag: tar.TypeReg}}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			tw := tar.NewWriter(&b)
			for _, h := range tc.hdrs {
				if err := tw.WriteHeader(h); err != nil {
					t.Fatal(err)
				}
			}
			tw.Close()
			es, err := ReadTar(&b)
			if err != nil {
				t.Fatal(err)
			}
			if got := findings(Hidden(es, patched)); got != tc.want {
				t.Errorf("got:\n%swant:\n%s", got, tc.want)
			}
		})
	}
}

func TestHiddenDir(t *testing.T) {
	root := t.TempDir()
	mk := func(p string) string {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := os.WriteFile(mk("home/u/notes"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mk("etc/.wh.motd"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	want := "/etc/motd <- /etc/motd (whiteout): whiteout deletes the patched file\n"
	if err := unix.Mknod(mk("usr/local/bin/pod-start"), unix.S_IFCHR|0o600, 0); err == nil {
		want += "/usr/local/bin/pod-start <- /usr/local/bin/pod-start (whiteout): whiteout deletes the patched file\n"
	} else {
		t.Logf("no overlay whiteout: mknod: %v (not root?)", err)
	}
	if err := unix.Setxattr(filepath.Join(root, "usr/local"), "trusted.overlay.opaque", []byte("y"), 0); err == nil {
		want += "/usr/local/bin/pod-start <- /usr/local (opaque): opaque directory hides the lower layers below it\n"
	} else {
		t.Logf("no opaque dir: setxattr: %v", err)
	}
	es, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	got := findings(Hidden(es, patched))
	// Hidden sorts by entry path within a file: /usr/local < /usr/local/bin/pod-start.
	wantLines := strings.Split(strings.TrimSpace(want), "\n")
	for _, l := range wantLines {
		if !strings.Contains(got, l+"\n") {
			t.Errorf("missing %q in:\n%s", l, got)
		}
	}
	if n := strings.Count(got, "\n"); n != len(wantLines) {
		t.Errorf("%d findings, want %d:\n%s", n, len(wantLines), got)
	}
}

func TestOpenGzipTar(t *testing.T) {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "etc/.wh.motd", Typeflag: tar.TypeReg})
	tw.Close()
	zw.Close()
	p := filepath.Join(t.TempDir(), "upper.tar.gz")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	es, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := findings(Hidden(es, patched)); got != "/etc/motd <- /etc/motd (whiteout): whiteout deletes the patched file\n" {
		t.Errorf("got %q", got)
	}
}
