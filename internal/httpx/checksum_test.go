package httpx

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

const (
	sha256Hello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" // sha256("hello")
	sha1Hello   = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
	md5Hello    = "5d41402abc4b2a76b9719d911017c592"
)

var sha512Hello = sha512.Sum512([]byte("hello"))

func TestParseChecksum(t *testing.T) {
	sha512Hex := hex.EncodeToString(sha512Hello[:])
	tests := []struct {
		in      string
		alg     string
		sumHex  string
		wantErr bool
	}{
		{"sha256:" + sha256Hello, "sha256", sha256Hello, false},
		{"SHA256:" + strings.ToUpper(sha256Hello), "sha256", sha256Hello, false},
		{"sha-256:" + sha256Hello, "sha256", sha256Hello, false},
		{"  sha256 : " + sha256Hello + "\n", "sha256", sha256Hello, false},
		{"sha512:" + sha512Hex, "sha512", sha512Hex, false},
		{"SHA-512:" + sha512Hex, "sha512", sha512Hex, false},
		{"sha1:" + sha1Hello, "sha1", sha1Hello, false},
		{"sha-1:" + sha1Hello, "sha1", sha1Hello, false},
		{"md5:" + md5Hello, "md5", md5Hello, false},
		{"MD5:" + md5Hello, "md5", md5Hello, false},

		{"", "", "", true},
		{sha256Hello, "", "", true},
		{"sha256", "", "", true},
		{"sha256:", "", "", true},
		{"sha256=" + sha256Hello, "", "", true},
		{"sha384:" + sha256Hello, "", "", true},
		{"sha3-256:" + sha256Hello, "", "", true},
		{"crc32:deadbeef", "", "", true},
		{"sha256:" + sha256Hello[:62], "", "", true},
		{"sha256:" + sha256Hello[:63], "", "", true},
		{"sha256:" + sha256Hello + "00", "", "", true},
		{"sha256:" + md5Hello, "", "", true},
		{"md5:" + sha256Hello, "", "", true},
		{"sha256:" + sha256Hello[:63] + "g", "", "", true},
		{"sha256:" + sha256Hello[:32] + " " + sha256Hello[32:], "", "", true},
		{"sha256:0x" + sha256Hello[2:], "", "", true},
		{"sha256:" + base64.StdEncoding.EncodeToString(make([]byte, 32)), "", "", true},
	}
	for _, tt := range tests {
		got, err := ParseChecksum(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseChecksum(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrChecksum) {
				t.Errorf("ParseChecksum(%q) error %v does not wrap ErrChecksum", tt.in, err)
			}
			continue
		}
		if got.Algorithm != tt.alg || hex.EncodeToString(got.Sum) != tt.sumHex {
			t.Errorf("ParseChecksum(%q) = %v, want %s:%s", tt.in, got, tt.alg, tt.sumHex)
		}
		if want := tt.alg + ":" + tt.sumHex; got.String() != want {
			t.Errorf("String() = %q, want %q", got.String(), want)
		}
		h := got.New()
		h.Write([]byte("hello"))
		if !bytes.Equal(h.Sum(nil), got.Sum) {
			t.Errorf("%s.New() does not hash \"hello\" to the checksum", tt.alg)
		}
	}
}

func TestChecksumNewPanicsOnUnknownAlgorithm(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Checksum{}.New() did not panic")
		}
	}()
	Checksum{}.New()
}

func TestParseReprDigest(t *testing.T) {
	s256 := sha256.Sum256([]byte("hello"))
	b256 := base64.StdEncoding.EncodeToString(s256[:])
	b512 := base64.StdEncoding.EncodeToString(sha512Hello[:])
	other := sha256.Sum256([]byte("other"))
	bOther := base64.StdEncoding.EncodeToString(other[:])
	md5b := base64.StdEncoding.EncodeToString(make([]byte, 16))

	c256 := Checksum{"sha256", s256[:]}
	c512 := Checksum{"sha512", sha512Hello[:]}
	cOther := Checksum{"sha256", other[:]}

	tests := []struct {
		name string
		in   string
		want []Checksum
	}{
		{"sha-256", "sha-256=:" + b256 + ":", []Checksum{c256}},
		{"both", "sha-256=:" + b256 + ":, sha-512=:" + b512 + ":", []Checksum{c256, c512}},
		{"order kept", "sha-512=:" + b512 + ":,sha-256=:" + b256 + ":", []Checksum{c512, c256}},
		{"ows", "  sha-256=:" + b256 + ":\t,\tsha-512=:" + b512 + ":  ", []Checksum{c256, c512}},
		{"upper-case key", "SHA-256=:" + b256 + ":", []Checksum{c256}},
		{"no padding", "sha-256=:" + strings.TrimRight(b256, "=") + ":", []Checksum{c256}},
		{"parameters ignored", `sha-256=:` + b256 + `:;note="a, b";x=1, sha-512=:` + b512 + `:`, []Checksum{c256, c512}},
		{"last wins", "sha-256=:" + bOther + ":, sha-256=:" + b256 + ":", []Checksum{c256}},
		{"malformed duplicate ignored", "sha-256=:" + bOther + ":, sha-256=:!!:", []Checksum{cOther}},
		{"insecure skipped", "md5=:" + md5b + ":, sha=:" + md5b + ":, unixsum=1, crc32c=:AAAAAA==:, sha-256=:" + b256 + ":", []Checksum{c256}},
		{"unknown skipped", "sha-384=:" + b512 + ":, id-sha-256=:" + b256 + ":", nil},
		{"wrong length", "sha-256=:" + b512 + ":, sha-512=:" + b256 + ":", nil},
		{"not a byte sequence", `sha-256="` + b256 + `", sha-256=` + b256 + `, sha-256`, nil},
		{"unterminated", "sha-256=:" + b256, nil},
		{"junk after", "sha-256=:" + b256 + ":x", nil},
		{"bad base64", "sha-256=:" + b256[:10] + "*" + b256[11:] + ":", nil},
		{"newline in base64", "sha-256=:" + b256[:10] + "\n" + b256[10:] + ":", nil},
		{"space around =", "sha-256 = :" + b256 + ":", nil},
		{"url-safe base64", "sha-256=:" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)) + ":", nil},
		{"empty", "", nil},
		{"commas only", ",,, ,", nil},
		{"malformed then good", "sha-256=:!:, ,garbage, sha-512=:" + b512 + ":", []Checksum{c512}},
	}
	for _, tt := range tests {
		got := ParseReprDigest(tt.in)
		if !equalChecksums(got, tt.want) {
			t.Errorf("%s: ParseReprDigest(%q) = %v, want %v", tt.name, tt.in, got, tt.want)
		}
	}
}

func equalChecksums(a, b []Checksum) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Algorithm != b[i].Algorithm || !bytes.Equal(a[i].Sum, b[i].Sum) {
			return false
		}
	}
	return true
}

func FuzzParseChecksum(f *testing.F) {
	for _, s := range []string{"sha256:" + sha256Hello, "md5:" + md5Hello, "sha-1:" + sha1Hello, "sha256:", "x:y:z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseChecksum(s)
		if err != nil {
			if !errors.Is(err, ErrChecksum) {
				t.Fatalf("error %v does not wrap ErrChecksum", err)
			}
			return
		}
		if len(c.Sum) != c.New().Size() {
			t.Fatalf("%q: %d-byte sum for %s", s, len(c.Sum), c.Algorithm)
		}
		again, err := ParseChecksum(c.String())
		if err != nil || again.Algorithm != c.Algorithm || !bytes.Equal(again.Sum, c.Sum) {
			t.Fatalf("%q -> %v -> %v, %v", s, c, again, err)
		}
	})
}

func FuzzParseReprDigest(f *testing.F) {
	s256 := sha256.Sum256([]byte("hello"))
	b256 := base64.StdEncoding.EncodeToString(s256[:])
	for _, s := range []string{
		"sha-256=:" + b256 + ":",
		"sha-256=:" + b256 + ":;a=\"x,y\", sha-512=:AAAA:",
		"md5=:AAAAAAAAAAAAAAAAAAAAAA==:",
		`"unterminated, sha-256=:` + b256 + `:`,
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		seen := map[string]bool{}
		for _, c := range ParseReprDigest(s) {
			if c.Algorithm != "sha256" && c.Algorithm != "sha512" {
				t.Fatalf("%q: algorithm %q", s, c.Algorithm)
			}
			if seen[c.Algorithm] {
				t.Fatalf("%q: %s returned twice", s, c.Algorithm)
			}
			seen[c.Algorithm] = true
			if len(c.Sum) != c.New().Size() {
				t.Fatalf("%q: %d-byte sum for %s", s, len(c.Sum), c.Algorithm)
			}
		}
	})
}
