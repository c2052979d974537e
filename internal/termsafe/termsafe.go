package termsafe

import (
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// Escape returns s with every byte of an unsafe character written as
// `\xNN` (lower-case hex, as dmesg and /dev/kmsg write them). Unsafe are
// the C0 controls (tab and newline too: a name must not break a table's
// columns or lines), DEL, the C1 controls, the bidirectional marks,
// embeddings, overrides and isolates (U+200E, U+200F, U+061C,
// U+202A-U+202E, U+2066-U+2069), the line and paragraph separators
// U+2028 and U+2029, and bytes that are not valid UTF-8. A backslash is
// left alone, as dmesg leaves it: the escaped text is for reading, and the
// true string is in the JSON output. A safe s is returned as is, without
// allocating.
func Escape(s string) string {
	i := firstUnsafe(s)
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s)+16)
	return string(appendFrom(append(b, s[:i]...), s, i))
}

// Append appends Escape(s) to b.
func Append(b []byte, s string) []byte {
	i := firstUnsafe(s)
	if i < 0 {
		return append(b, s...)
	}
	return appendFrom(append(b, s[:i]...), s, i)
}

// firstUnsafe is the offset of the first unsafe character in s, or -1.
func firstUnsafe(s string) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if unsafeRune(r, n) {
			return i
		}
		i += n
	}
	return -1
}

func appendFrom(b []byte, s string, i int) []byte {
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				b = appendHex(b, c)
			} else {
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if unsafeRune(r, n) {
			for j := range n {
				b = appendHex(b, s[i+j])
			}
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return b
}

func appendHex(b []byte, c byte) []byte {
	return append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
}

// unsafeRune reports whether the rune r, n bytes long in its input, must
// be escaped; r is utf8.RuneError with n == 1 for an invalid byte.
func unsafeRune(r rune, n int) bool {
	switch {
	case r == utf8.RuneError && n == 1:
		return true
	case r >= 0x80 && r <= 0x9f: // C1 controls, CSI (U+009B) among them
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f:
		return true
	case r >= 0x2028 && r <= 0x202e:
		return true
	case r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// JSON rewrites, in an encoded JSON document (or YAML whose non-ASCII
// strings are double-quoted), every unsafe character a JSON encoder leaves
// raw (DEL, the C1 controls, the bidirectional marks, U+2028 and U+2029)
// as a \uXXXX escape. The decoded string stays the true one; only the
// bytes a terminal would act on change. Such characters can only stand
// inside strings, where \u escapes are valid in both formats. doc is
// returned as is when nothing needs it, else a new slice.
func JSON(doc []byte) []byte {
	i := firstUnsafeJSON(doc)
	if i < 0 {
		return doc
	}
	out := make([]byte, 0, len(doc)+32)
	for i >= 0 {
		out = append(out, doc[:i]...)
		r, n := utf8.DecodeRune(doc[i:])
		if r == utf8.RuneError && n == 1 {
			r = rune(doc[i]) // not UTF-8, so not from an encoder: keep the byte visible
		}
		out = append(out, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
		doc = doc[i+n:]
		i = firstUnsafeJSON(doc)
	}
	return append(out, doc...)
}

// firstUnsafeJSON is the offset of the first unsafe character in doc that
// JSON leaves raw (any but the C0 controls, which it never does), or -1.
func firstUnsafeJSON(doc []byte) int {
	for i := 0; i < len(doc); {
		c := doc[i]
		if c < utf8.RuneSelf {
			if c == 0x7f {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(doc[i:])
		if unsafeRune(r, n) {
			return i
		}
		i += n
	}
	return -1
}
