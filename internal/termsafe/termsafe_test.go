package termsafe

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"plain", "python3", "python3"},
		{"empty", "", ""},
		{"utf-8 text stays", "jupyter-élise 数据", "jupyter-élise 数据"},
		{"backslash stays, as in dmesg", `C:\x1b`, `C:\x1b`},
		{"clear screen and colour", "\x1b[2J\x1b[31mEVIL", `\x1b[2J\x1b[31mEVIL`},
		{"tab and newline break tables", "a\tb\nc\rd", `a\x09b\x0ac\x0dd`},
		{"NUL and DEL", "a\x00b\x7f", `a\x00b\x7f`},
		{"C1 CSI, encoded", "a\u009b31m", `a\xc2\x9b31m`},
		{"right-to-left override", "evil\u202egpj.exe", `evil\xe2\x80\xaegpj.exe`},
		{"every bidi mark", "\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u200e\u200f\u061c",
			`\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xac\xe2\x80\xad\xe2\x81\xa6\xe2\x81\xa7\xe2\x81\xa8\xe2\x81\xa9\xe2\x80\x8e\xe2\x80\x8f\xd8\x9c`},
		{"line separators", "a\u2028b\u2029c", `a\xe2\x80\xa8b\xe2\x80\xa9c`},
		{"invalid UTF-8", "a\xffb\xe2\x80", `a\xffb\xe2\x80`},
		{"a raw 8-bit CSI byte", "a\x9b2J", `a\x9b2J`},
		{"neighbours of the bidi ranges stay", "\u2027\u202f\u2065\u206a\u200d", "\u2027\u202f\u2065\u206a\u200d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Escape(tc.in); got != tc.want {
				t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if got := string(Append([]byte("> "), tc.in)); got != "> "+tc.want {
				t.Errorf("Append(%q) = %q, want %q", tc.in, got, "> "+tc.want)
			}
		})
	}
}

func TestEscapeSafeDoesNotAllocate(t *testing.T) {
	s := strings.Repeat("systemd-journald ", 8)
	if n := testing.AllocsPerRun(100, func() { _ = Escape(s) }); n != 0 {
		t.Errorf("Escape of a safe string: %v allocations, want 0", n)
	}
}

// FuzzEscape: whatever the input, the output is valid UTF-8 with nothing
// left to escape, safe input comes back unchanged, and Append agrees.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "sshd", "\x1b[2J\x1b[31mEVIL", "a\u202eb", "\xff\xfe", "\u009b", "é\u2069"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Escape(s)
		if !utf8.ValidString(got) {
			t.Fatalf("Escape(%q) = %q: not valid UTF-8", s, got)
		}
		if i := firstUnsafe(got); i >= 0 {
			t.Fatalf("Escape(%q) = %q: unsafe at %d", s, got, i)
		}
		if firstUnsafe(s) < 0 && got != s {
			t.Fatalf("Escape(%q) = %q: safe input changed", s, got)
		}
		if Escape(got) != got {
			t.Fatalf("Escape is not idempotent on %q", s)
		}
		if a := string(Append(nil, s)); a != got {
			t.Fatalf("Append(%q) = %q, Escape = %q", s, a, got)
		}
	})
}

func BenchmarkEscape(b *testing.B) {
	for _, bc := range []struct{ name, s string }{
		{"safe", "/kubepods/burstable/pod30e633b5-4140-4774-9122-1b9e140c8556/crio-2c6ca22c5968"},
		{"hostile", "\x1b[2J\x1b[31mEVIL\u202e"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				_ = Escape(bc.s)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	for _, tc := range []struct {
		name        string
		in          string // the true string
		wantEncoded string
	}{
		{"plain", "python", `"python"`},
		{"C0 is the encoder's", "\x1b[2J", `"\u001b[2J"`},
		{"DEL", "a\x7f", `"a\u007f"`},
		{"C1 CSI", "a\u009b2J", `"a\u009b2J"`},
		{"bidi override", "evil\u202egpj", `"evil\u202egpj"`},
		{"isolate and marks", "\u2066\u200f\u061c", `"\u2066\u200f\u061c"`},
		{"UTF-8 text stays", "élise", `"élise"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := json.Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got := JSON(enc)
			if string(got) != tc.wantEncoded {
				t.Errorf("JSON(%s) = %s, want %s", enc, got, tc.wantEncoded)
			}
			var back string
			if err := json.Unmarshal(got, &back); err != nil || back != tc.in {
				t.Errorf("decodes to %q (%v), want the true string %q", back, err, tc.in)
			}
		})
	}
}

// FuzzJSON: any string, encoded and made safe, decodes to what the
// encoder alone gives, and holds nothing a terminal acts on.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{"", "sshd", "\x1b[2J\u009b", "a\u202eb\u2028", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc, err := json.Marshal(map[string]string{"comm": s})
		if err != nil {
			t.Fatal(err)
		}
		got := JSON(enc)
		var a, b map[string]string
		if err := json.Unmarshal(enc, &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(got, &b); err != nil {
			t.Fatalf("JSON(%s) = %s: %v", enc, got, err)
		}
		if a["comm"] != b["comm"] {
			t.Fatalf("JSON changed the string: %q, want %q", b["comm"], a["comm"])
		}
		if i := firstUnsafe(string(got)); i >= 0 {
			t.Fatalf("JSON(%s) = %s: unsafe at %d", enc, got, i)
		}
	})
}
