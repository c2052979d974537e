package lineage

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "update golden files")

func TestLoadGood(t *testing.T) {
	l, err := Load("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(l.Refs(), " "), "registry.example.com/pods/base:v1 registry.example.com/pods/base:v2 registry.example.com/pods/base:v3 registry.example.com/pods/cuda:12.2-v1"; got != want {
		t.Errorf("Refs() = %q, want %q", got, want)
	}
	p := l.Patch("oom-score-adj")
	if p == nil || len(p.Files) != 1 || !bytes.Contains(p.Files[0].Content, []byte("900")) || p.Files[0].Mode != 0o755 {
		t.Fatalf("oom-score-adj patch not loaded with its source: %+v", p)
	}
	if m := l.Patch("motd"); m.Files[0].Mode != 0o644 || m.Files[0].UID != 0 {
		t.Errorf("motd defaults: %+v", m.Files[0])
	}
	v3 := l.Family("base").Version("v3")
	if v3.Parent != l.Family("base").Version("v2") {
		t.Errorf("v3 parent = %v", v3.Parent)
	}
}

func TestDockerfileGolden(t *testing.T) {
	l, err := Load("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ family, version string }{{"base", "v1"}, {"base", "v3"}, {"cuda", "12.2-v1"}} {
		t.Run(tc.family+"-"+tc.version, func(t *testing.T) {
			var b bytes.Buffer
			if err := Dockerfile(&b, l.Family(tc.family).Version(tc.version)); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.family+"-"+tc.version+".Dockerfile.golden")
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if b.String() != string(want) {
				t.Errorf("Dockerfile differs from %s:\n%s", golden, b.String())
			}
		})
	}
}

func TestIncrementDockerfile(t *testing.T) {
	l, err := Load("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := IncrementDockerfile(&b, l.Family("base").Version("v2")); err != nil {
		t.Fatal(err)
	}
	if want := "FROM registry.example.com/pods/base:v1\nRUN apt-get install -y gzip\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

const header = "schema: 1\nfamilies:\n  base:\n    repository: r.example.com/base\n    versions:\n"

func TestParseErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		in   string
		want string // one of the errors, exactly
	}{
		"unknown from": {header + "      - name: v1\n        from: ubuntu:22.04\n      - name: v2\n      - name: v3\n        from: v9\n",
			"lineage.yaml:10: families.base.versions[2].from: unknown version \"v9\": must name an earlier version of family base"},
		"first needs from": {header + "      - name: v1\n", "lineage.yaml:6: families.base.versions[0].from: required on a family's first version (the external base image)"},
		"FROM in increment": {header + "      - name: v1\n        from: u:1\n        increment: |\n          RUN true\n          FROM x\n",
			"lineage.yaml:10: families.base.versions[0].increment: FROM is not allowed in an increment: the base is the previous version"},
		"bad instruction": {header + "      - name: v1\n        from: u:1\n        increment: |\n          RUN a \\\n            b\n          PUSH x\n",
			"lineage.yaml:11: families.base.versions[0].increment: unknown Dockerfile instruction \"PUSH\""},
		"unknown field": {header + "      - name: v1\n        from: u:1\n        form: v1\n",
			"lineage.yaml:8: families.base.versions[0].form: unknown field (known: name, from, ref, increment)"},
		"duplicate version": {header + "      - name: v1\n        from: u:1\n      - name: v1\n",
			"lineage.yaml:8: families.base.versions[1].name: duplicate version \"v1\""},
		"schema":      {"schema: 2\nfamilies: {}\n", "lineage.yaml:1: schema: unsupported schema \"2\", want 1"},
		"yaml syntax": {"schema: 1\nfamilies: [\n", "lineage.yaml:2: did not find expected node content"},
		"patch both": {"schema: 1\nfamilies: {}\npatches:\n  - id: x\n    run: [true]\n    files: [{path: /a, content: b}]\n",
			"lineage.yaml:5: patches.x.run: a patch has either files or run, not both"},
		"patch bad id": {"schema: 1\nfamilies: {}\npatches:\n  - id: Bad_ID\n    run: [true]\n",
			"lineage.yaml:4: patches[0].id: \"Bad_ID\" must be lower-case letters, digits, '.' and '-' (at most 63)"},
		"patch dup id": {"schema: 1\nfamilies: {}\npatches:\n  - id: a\n    run: [x]\n  - id: a\n    run: [y]\n",
			"lineage.yaml:6: patches[1].id: duplicate patch id \"a\""},
		"relative path": {"schema: 1\nfamilies: {}\npatches:\n  - id: a\n    files:\n      - path: etc/x\n        content: y\n",
			"lineage.yaml:6: patches.a.files[0].path: \"etc/x\" must be an absolute, clean file path"},
		"bad mode": {"schema: 1\nfamilies: {}\npatches:\n  - id: a\n    files:\n      - path: /x\n        mode: \"0999\"\n        content: y\n",
			"lineage.yaml:7: patches.a.files[0].mode: \"0999\" is not an octal file mode like \"0755\""},
		"source escapes": {"schema: 1\nfamilies: {}\npatches:\n  - id: a\n    files:\n      - path: /x\n        source: ../../etc/shadow\n",
			"lineage.yaml:7: patches.a.files[0].source: \"../../etc/shadow\" must be a path relative to the lineage file, inside its directory"},
		"bad base ref": {header + "      - name: v1\n        from: \"UPPER:1\"\n",
			"lineage.yaml:7: families.base.versions[0].from: could not parse reference: UPPER:1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.in), "lineage.yaml")
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			found := false
			for _, line := range strings.Split(err.Error(), "\n") {
				found = found || line == tc.want
			}
			if !found {
				t.Errorf("errors:\n%v\nwant a line:\n%s", err, tc.want)
			}
		})
	}
}

func TestLoadMissingSource(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "l.yaml")
	in := "schema: 1\nfamilies: {}\npatches:\n  - id: a\n    files:\n      - path: /x\n        source: nope\n"
	if err := os.WriteFile(p, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), "l.yaml:7: patches.a.files[0].source: \"nope\": no such file") {
		t.Fatalf("Load() error = %v", err)
	}
}

func FuzzParseLineage(f *testing.F) {
	good, err := os.ReadFile("testdata/good.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(header + "      - name: v1\n        from: u:1\n      - name: v2\n        from: v1\n"))
	f.Add([]byte("schema: 1\nfamilies: {}\npatches:\n  - id: a\n    files:\n      - {path: /a, mode: 0755, content: x}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Parse(bytes.NewReader(b), "f.yaml")
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		for _, fam := range l.Families {
			for _, v := range fam.Versions {
				if err := Dockerfile(&bytes.Buffer{}, v); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
