package httpx

import (
	"mime"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxFilenameBytes is the longest name, in bytes, SanitizeFilename returns:
// below the NAME_MAX (255) of common file systems, leaving room for the
// suffixes durl appends (".durl-part", ".durl-mismatch").
const MaxFilenameBytes = 200

// maxExtBytes is the longest extension (with its dot) that SanitizeFilename
// keeps when it has to shorten a name; a longer "extension" is just text.
const maxExtBytes = 32

// fallbackName is what DownloadName returns when neither the response nor the
// URL offers a usable name.
const fallbackName = "download"

// ContentDispositionFilename returns the file name a Content-Disposition
// field value suggests (RFC 6266), unsanitised: the caller must pass it
// through SanitizeFilename before using it.
//
// filename* (RFC 8187: charset'language'percent-encoded, charset UTF-8 or
// ISO-8859-1) is preferred over filename (a token or a quoted-string with
// backslash escapes). The parser is lenient with common real-world quirks: a
// missing disposition type, unquoted names containing spaces, a quoted
// filename*, stray or trailing ';', an unterminated quoted-string, and raw
// ISO-8859-1 bytes in filename. The name is always valid UTF-8. RFC 2231 continuations (filename*0*=…) are
// understood through mime.ParseMediaType. ok is false when no non-empty name
// is present.
func ContentDispositionFilename(header string) (name string, ok bool) {
	params := dispositionParams(header)
	if v, found := params["filename*"]; found {
		if name, ok := decodeExtValue(v); ok && name != "" {
			return name, true
		}
	}
	if v := params["filename"]; v != "" {
		return toUTF8(v), true
	}
	// RFC 2231 continuations, which RFC 6266 discourages but some servers send.
	if _, mp, err := mime.ParseMediaType(header); err == nil && mp["filename"] != "" {
		return toUTF8(mp["filename"]), true
	}
	return "", false
}

// toUTF8 returns s if it is valid UTF-8, else s read as ISO-8859-1, the
// historic charset of field values (RFC 9110 §5.5).
func toUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return latin1ToUTF8(s)
}

// dispositionParams splits a Content-Disposition value into its parameters,
// keyed by lower-cased name; the first occurrence of a name wins. The
// disposition type and parameters without '=' are ignored.
func dispositionParams(h string) map[string]string {
	params := make(map[string]string)
	i := 0
	for i < len(h) {
		for i < len(h) && (h[i] == ';' || isASCIISpace(h[i])) {
			i++
		}
		start := i
		for i < len(h) && h[i] != '=' && h[i] != ';' {
			i++
		}
		name := strings.ToLower(strings.Trim(h[start:i], asciiSpace))
		if i >= len(h) || h[i] == ';' {
			continue // the disposition type, or a flag without a value
		}
		i++ // '='
		for i < len(h) && isASCIISpace(h[i]) {
			i++
		}
		var value string
		if i < len(h) && h[i] == '"' {
			value, i = readQuoted(h, i+1)
		} else {
			start := i
			for i < len(h) && h[i] != ';' {
				i++
			}
			value = strings.TrimRight(h[start:i], asciiSpace)
		}
		if _, dup := params[name]; !dup && name != "" {
			params[name] = value
		}
	}
	return params
}

// asciiSpace is the white space the Content-Disposition parser skips; it is
// more than OWS, as in mime.ParseMediaType, to tolerate sloppy servers.
const asciiSpace = " \t\r\n\v\f"

func isASCIISpace(c byte) bool { return strings.IndexByte(asciiSpace, c) >= 0 }

// readQuoted reads a quoted-string whose opening quote ends just before
// h[i], undoing backslash escapes. It returns the content and the index after
// the closing quote; an unterminated string runs to the end of h.
func readQuoted(h string, i int) (string, int) {
	var b strings.Builder
	for i < len(h) {
		switch c := h[i]; {
		case c == '\\' && i+1 < len(h):
			b.WriteByte(h[i+1])
			i += 2
		case c == '"':
			return b.String(), i + 1
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), i
}

// decodeExtValue decodes an RFC 8187 ext-value: charset'language'pct-encoded.
func decodeExtValue(v string) (string, bool) {
	charset, rest, ok := strings.Cut(v, "'")
	if !ok {
		return "", false
	}
	_, encoded, ok := strings.Cut(rest, "'") // the language tag is ignored
	if !ok {
		return "", false
	}
	raw, ok := percentDecode(encoded)
	if !ok {
		return "", false
	}
	switch strings.ToLower(charset) {
	case "utf-8", "us-ascii":
		if !utf8.ValidString(raw) {
			return "", false
		}
		return raw, true
	case "iso-8859-1":
		return latin1ToUTF8(raw), true
	}
	return "", false
}

// percentDecode decodes %XX escapes strictly: a '%' not followed by two hex
// digits makes the whole value invalid.
func percentDecode(s string) (string, bool) {
	if !strings.Contains(s, "%") {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	return string(b), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// latin1ToUTF8 reinterprets ISO-8859-1 bytes as UTF-8 text.
func latin1ToUTF8(s string) string {
	r := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		r[i] = rune(s[i])
	}
	return string(r)
}

// SanitizeFilename makes one safe path element out of an untrusted name. It
// keeps only what follows the last '/' or '\', replaces invalid UTF-8 with
// '_', removes control characters (C0, DEL, C1), bidirectional formatting
// characters (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) and line
// and paragraph separators, trims spaces and dots at both ends, and shortens
// the result to MaxFilenameBytes bytes at a rune boundary, keeping a short
// extension. The result never contains '/', '\' or NUL, is never "." or
// "..", and is valid UTF-8; "" means the name is not usable.
func SanitizeFilename(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.ToValidUTF8(name, "_")
	name = strings.Map(func(r rune) rune {
		if unsafeRune(r) {
			return -1
		}
		return r
	}, name)
	name = strings.TrimFunc(name, isTrimRune)
	if len(name) > MaxFilenameBytes {
		name = shorten(name, MaxFilenameBytes)
	}
	return name
}

// unsafeRune reports whether r must not appear in a file name.
func unsafeRune(r rune) bool {
	switch {
	case unicode.IsControl(r): // C0, DEL and C1
		return true
	case r == 0x061C, r == 0x200E, r == 0x200F: // ALM, LRM, RLM
		return true
	case 0x202A <= r && r <= 0x202E: // LRE, RLE, PDF, LRO, RLO
		return true
	case 0x2066 <= r && r <= 0x2069: // LRI, RLI, FSI, PDI
		return true
	case r == 0x2028, r == 0x2029: // line and paragraph separators
		return true
	}
	return false
}

// isTrimRune reports whether r is trimmed from both ends of a file name.
func isTrimRune(r rune) bool { return r == '.' || unicode.IsSpace(r) }

// shorten cuts a trimmed, valid UTF-8 name to at most max bytes, keeping its
// extension when that is short, and never cutting inside a rune.
func shorten(name string, max int) string {
	ext := ""
	if i := strings.LastIndexByte(name, '.'); i > 0 && len(name)-i <= maxExtBytes {
		ext = name[i:]
	}
	base := name[:len(name)-len(ext)]
	if n := max - len(ext); len(base) > n {
		for n > 0 && !utf8.RuneStart(base[n]) {
			n--
		}
		base = base[:n]
	}
	// The cut may expose trailing dots or spaces; base keeps its first rune,
	// which is neither, because max-len(ext) >= max-maxExtBytes > utf8.UTFMax.
	return strings.TrimRightFunc(base, isTrimRune) + ext
}

// FilenameFromURL returns the sanitised, percent-decoded last segment of u's
// path, or "" when there is none (nil u, empty path, path ending in '/').
func FilenameFromURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	p := u.EscapedPath()
	seg := p[strings.LastIndexByte(p, '/')+1:]
	if dec, err := url.PathUnescape(seg); err == nil {
		seg = dec
	}
	return SanitizeFilename(seg)
}

// DownloadName chooses the local file name for a download: the
// Content-Disposition name, else the URL's last path segment, else
// "download". The result is always sanitised and never empty.
func DownloadName(contentDisposition string, u *url.URL) string {
	if n, ok := ContentDispositionFilename(contentDisposition); ok {
		if name := SanitizeFilename(n); name != "" {
			return name
		}
	}
	if name := FilenameFromURL(u); name != "" {
		return name
	}
	return fallbackName
}
