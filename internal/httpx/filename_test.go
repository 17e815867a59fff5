package httpx

import (
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestContentDispositionFilename(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{`attachment; filename="report.pdf"`, "report.pdf", true},
		{`attachment; filename=report.pdf`, "report.pdf", true},
		{`inline; filename="a \"quoted\" \\ name.txt"`, `a "quoted" \ name.txt`, true},
		{`attachment; FILENAME="up.txt"`, "up.txt", true},
		{`attachment;filename="tight.txt"`, "tight.txt", true},
		{`attachment ; filename = "spaced.txt" ;`, "spaced.txt", true},
		{`attachment; filename="semi;colon.txt"; size=3`, "semi;colon.txt", true},
		// RFC 8187 filename* is preferred, whatever the order.
		{`attachment; filename="EURO rates"; filename*=utf-8''%e2%82%ac%20rates`, "€ rates", true},
		{`attachment; filename*=UTF-8''%e2%82%ac%20rates; filename="EURO rates"`, "€ rates", true},
		{`attachment; filename*=UTF-8'en'na%C3%AFve.txt`, "naïve.txt", true},
		{`attachment; filename*=iso-8859-1'en'%A3%20rates`, "£ rates", true},
		{`attachment; filename*=us-ascii''plain.txt`, "plain.txt", true},
		{`attachment; filename*="UTF-8''quoted%20ext.txt"`, "quoted ext.txt", true},
		// Undecodable filename* falls back to filename.
		{`attachment; filename*=UTF-8''bad%zz; filename="fallback.txt"`, "fallback.txt", true},
		{`attachment; filename*=UTF-8''trunc%4; filename="fallback.txt"`, "fallback.txt", true},
		{`attachment; filename*=UTF-8''%ff%fe; filename="fallback.txt"`, "fallback.txt", true},
		{`attachment; filename*=koi8-r''%c1; filename="fallback.txt"`, "fallback.txt", true},
		{`attachment; filename*=noquotes; filename="fallback.txt"`, "fallback.txt", true},
		{`attachment; filename*=UTF-8''`, "", false},
		// Real-world quirks.
		{`attachment; filename=my report final.pdf`, "my report final.pdf", true},
		{`attachment; filename="a.txt";`, "a.txt", true},
		{`attachment; filename=a.txt;;`, "a.txt", true},
		{`filename="no-type.txt"`, "no-type.txt", true},
		{`attachment; filename="unterminated.txt`, "unterminated.txt", true},
		{"attachment; filename=\"caf\xe9.txt\"", "café.txt", true},     // raw ISO-8859-1
		{"attachment; filename=\"caf\xc3\xa9.txt\"", "café.txt", true}, // raw UTF-8
		{`attachment; filename="first.txt"; filename="second.txt"`, "first.txt", true},
		{"attachment;\v filename=\x0bvt.txt\f", "vt.txt", true},                        // ASCII white space, as mime.ParseMediaType skips it
		{`attachment; filename*0="long"; filename*1="name.txt"`, "longname.txt", true}, // RFC 2231 continuation
		{"attachment; filename*0=\"caf\xe9\"", "café", true},                           // continuation, raw ISO-8859-1
		{"attachment; filename*0*=utf-8''caf%e9", "café", true},                        // continuation, bad UTF-8
		// Nothing usable.
		{``, "", false},
		{`attachment`, "", false},
		{`inline`, "", false},
		{`attachment; filename=""`, "", false},
		{`attachment; filename=`, "", false},
		{`attachment; name="field"`, "", false},
		{`attachment; xfilename="x.txt"`, "", false},
		// Hostile names come back raw: sanitising is the caller's job.
		{`attachment; filename="../../x"`, "../../x", true},
		{`attachment; filename*=UTF-8''..%2F..%2Fx`, "../../x", true},
		{`attachment; filename="/etc/passwd"`, "/etc/passwd", true},
		{`attachment; filename*=UTF-8''a%00b`, "a\x00b", true},
	}
	for _, tt := range tests {
		got, ok := ContentDispositionFilename(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ContentDispositionFilename(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestSanitizeFilename(t *testing.T) {
	long := strings.Repeat("a", 10*1024)
	tests := []struct {
		in, want string
	}{
		{"report.pdf", "report.pdf"},
		{"my report.pdf", "my report.pdf"},
		{"naïve €.txt", "naïve €.txt"},
		{"../../x", "x"},
		{"/etc/passwd", "passwd"},
		{`C:\evil\x.exe`, "x.exe"},
		{`..\..\..\windows\system32\x.dll`, "x.dll"},
		{"dir/", ""},
		{"x/..", ""},
		{"", ""},
		{".", ""},
		{"..", ""},
		{"...", ""},
		{". . .", ""},
		{"  ", ""},
		{".hidden", "hidden"},
		{"name.", "name"},
		{"  padded name  ", "padded name"},
		{"a\x00b.txt", "ab.txt"},
		{"\x00", ""},
		{"a\x01\x1f\x7fb", "ab"},
		{"line\r\nbreak\t.txt", "linebreak.txt"},
		{"c1\u0085\u009bx", "c1x"},
		{"evil\u202Etxt.exe", "eviltxt.exe"},
		{"\u2066iso\u2069late", "isolate"},
		{"lrm\u200Erlm\u200F", "lrmrlm"},
		{"sep\u2028arator", "separator"},
		{"bad\xffutf8", "bad_utf8"},
		{".\x00.", ""},
		{". \u202E.", ""},
		{"\u00a0nbsp\u3000", "nbsp"},
	}
	for _, tt := range tests {
		if got := SanitizeFilename(tt.in); got != tt.want {
			t.Errorf("SanitizeFilename(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}

	// Length caps.
	if got := SanitizeFilename(long); len(got) != MaxFilenameBytes {
		t.Errorf("10 KB name: got %d bytes, want %d", len(got), MaxFilenameBytes)
	}
	if got := SanitizeFilename(long + ".tar.gz"); len(got) != MaxFilenameBytes || !strings.HasSuffix(got, "a.gz") {
		t.Errorf("long name with extension: got %d bytes, suffix %q", len(got), got[max(0, len(got)-8):])
	}
	if got := SanitizeFilename("a." + long); len(got) != MaxFilenameBytes {
		t.Errorf("long extension: got %d bytes", len(got))
	}
	euro := strings.Repeat("€", 200) // 600 bytes, 3 per rune
	got := SanitizeFilename(euro + ".txt")
	if !utf8.ValidString(got) || len(got) > MaxFilenameBytes || !strings.HasSuffix(got, "€.txt") {
		t.Errorf("multi-byte cut: %d bytes, valid=%v, %q", len(got), utf8.ValidString(got), got)
	}
	if got := SanitizeFilename(strings.Repeat("€", 200)); !utf8.ValidString(got) || len(got) != MaxFilenameBytes/3*3 {
		t.Errorf("multi-byte cut without extension: %d bytes, valid=%v", len(got), utf8.ValidString(got))
	}
	// A cut that exposes trailing dots or spaces trims them.
	dotty := strings.Repeat("a", 190) + strings.Repeat(". ", 30) + ".txt"
	if got := SanitizeFilename(dotty); got != strings.Repeat("a", 190)+".txt" {
		t.Errorf("cut before dots: got %q", got)
	}
}

func TestFilenameFromURL(t *testing.T) {
	tests := []struct {
		raw, want string
	}{
		{"https://example.com/files/report.pdf", "report.pdf"},
		{"https://example.com/files/report.pdf?x=1#frag", "report.pdf"},
		{"https://example.com/files/my%20report.pdf", "my report.pdf"},
		{"https://example.com/na%C3%AFve.txt", "naïve.txt"},
		{"https://example.com/a%2F..%2F..%2Fetc%2Fpasswd", "passwd"},
		{"https://example.com/a%5C..%5Cx.exe", "x.exe"},
		{"https://example.com/%2E%2E", ""},
		{"https://example.com/x%00y", "xy"},
		{"https://example.com/dir/", ""},
		{"https://example.com/", ""},
		{"https://example.com", ""},
		{"https://example.com/bad%zzescape", "bad%zzescape"},
		{"mailto:someone@example.com", ""},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.raw)
		if err != nil {
			// url.Parse rejects some escapes; build the URL by hand.
			u = &url.URL{Scheme: "https", Host: "example.com", Path: "/bad%zzescape", RawPath: "/bad%zzescape"}
		}
		if got := FilenameFromURL(u); got != tt.want {
			t.Errorf("FilenameFromURL(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
	if got := FilenameFromURL(nil); got != "" {
		t.Errorf("FilenameFromURL(nil) = %q", got)
	}
}

func TestDownloadName(t *testing.T) {
	u := func(s string) *url.URL {
		v, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		cd   string
		u    *url.URL
		want string
	}{
		{`attachment; filename="cd.bin"`, u("https://h/url.bin"), "cd.bin"},
		{``, u("https://h/url.bin"), "url.bin"},
		{`attachment`, u("https://h/url.bin"), "url.bin"},
		{`attachment; filename=".."`, u("https://h/url.bin"), "url.bin"},
		{`attachment; filename*=UTF-8''..%2F..%2Fx`, u("https://h/url.bin"), "x"},
		{`attachment; filename="../../etc/passwd"`, nil, "passwd"},
		{``, u("https://h/dir/"), "download"},
		{`attachment; filename="..."`, u("https://h/"), "download"},
		{``, nil, "download"},
	}
	for _, tt := range tests {
		if got := DownloadName(tt.cd, tt.u); got != tt.want {
			t.Errorf("DownloadName(%q, %v) = %q, want %q", tt.cd, tt.u, got, tt.want)
		}
	}
}

// checkSafeName fails t unless name is a safe single path element (or "").
func checkSafeName(t *testing.T, from, name string) {
	t.Helper()
	if name == "." || name == ".." {
		t.Fatalf("%q -> %q", from, name)
	}
	if len(name) > MaxFilenameBytes {
		t.Fatalf("%q -> %d bytes", from, len(name))
	}
	if !utf8.ValidString(name) {
		t.Fatalf("%q -> invalid UTF-8 %q", from, name)
	}
	if strings.ContainsAny(name, "/\\\x00") {
		t.Fatalf("%q -> %q contains a separator or NUL", from, name)
	}
	for _, r := range name {
		if unicode.IsControl(r) || unsafeRune(r) {
			t.Fatalf("%q -> %q contains %U", from, name, r)
		}
	}
	if name != "" && strings.Trim(name, ". ") == "" {
		t.Fatalf("%q -> %q is only dots and spaces", from, name)
	}
	if SanitizeFilename(name) != name {
		t.Fatalf("%q -> %q is not a fixed point", from, name)
	}
}

func FuzzContentDispositionFilename(f *testing.F) {
	for _, s := range []string{
		`attachment; filename="report.pdf"`,
		`attachment; filename*=UTF-8''..%2F..%2Fx`,
		`attachment; filename=my report.pdf;`,
		"attachment; filename=\"a\x00b\u202Ec\"",
		`attachment; filename*0="a"; filename*1="b"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		name, ok := ContentDispositionFilename(header)
		if ok && name == "" {
			t.Fatalf("%q: ok with empty name", header)
		}
		if ok && !utf8.ValidString(name) {
			t.Fatalf("%q: name %q is not valid UTF-8", header, name)
		}
		checkSafeName(t, header, SanitizeFilename(name))
		checkSafeName(t, header, SanitizeFilename(header))
		if d := DownloadName(header, nil); d == "" {
			t.Fatalf("%q: empty DownloadName", header)
		} else {
			checkSafeName(t, header, d)
		}
	})
}
