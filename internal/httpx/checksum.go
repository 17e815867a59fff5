package httpx

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// ErrChecksum is wrapped by every error ParseChecksum returns.
var ErrChecksum = errors.New("httpx: invalid checksum")

// Checksum is an expected digest of a whole file: one the user gave, or one a
// server sent in Repr-Digest.
type Checksum struct {
	Algorithm string // one of "sha256", "sha512", "sha1", "md5"
	Sum       []byte // the raw digest, of the algorithm's size
}

type algorithm struct {
	size int
	new  func() hash.Hash
}

// algorithms are the digests durl can check, by canonical name.
var algorithms = map[string]algorithm{
	"sha256": {sha256.Size, sha256.New},
	"sha512": {sha512.Size, sha512.New},
	"sha1":   {sha1.Size, sha1.New},
	"md5":    {md5.Size, md5.New},
}

// algorithmAliases maps the lower-cased names a user may type to canonical names.
var algorithmAliases = map[string]string{
	"sha256": "sha256", "sha-256": "sha256",
	"sha512": "sha512", "sha-512": "sha512",
	"sha1": "sha1", "sha-1": "sha1",
	"md5": "md5",
}

// reprAlgorithms maps the RFC 9530 algorithm keys durl trusts to canonical
// names. The deprecated, insecure ones (md5, sha, crc32c, adler, unixsum,
// unixcksum) are deliberately absent.
var reprAlgorithms = map[string]string{
	"sha-256": "sha256",
	"sha-512": "sha512",
}

// ParseChecksum parses a user-supplied checksum "ALGORITHM:HEX", such as
// "sha256:9f86d0…". The algorithm is sha256, sha512, sha1 or md5 (any case,
// also spelt sha-256, sha-512, sha-1); the hex digits may be in either case
// and must be exactly the algorithm's digest size. Errors wrap ErrChecksum.
func ParseChecksum(s string) (Checksum, error) {
	name, hexSum, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return Checksum{}, fmt.Errorf("%w %s: want ALGORITHM:HEX, e.g. sha256:…", ErrChecksum, quote(s))
	}
	alg, ok := algorithmAliases[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return Checksum{}, fmt.Errorf("%w %s: unknown algorithm %s (want sha256, sha512, sha1 or md5)",
			ErrChecksum, quote(s), quote(name))
	}
	sum, err := hex.DecodeString(strings.TrimSpace(hexSum))
	if err != nil {
		return Checksum{}, fmt.Errorf("%w %s: digest is not hexadecimal", ErrChecksum, quote(s))
	}
	if want := algorithms[alg].size; len(sum) != want {
		return Checksum{}, fmt.Errorf("%w %s: %s digest has %d hex digits, want %d",
			ErrChecksum, quote(s), alg, 2*len(sum), 2*want)
	}
	return Checksum{Algorithm: alg, Sum: sum}, nil
}

// New returns a fresh hash.Hash computing c's algorithm. It panics if
// c.Algorithm is not one ParseChecksum or ParseReprDigest can return.
func (c Checksum) New() hash.Hash {
	a, ok := algorithms[c.Algorithm]
	if !ok {
		panic(fmt.Sprintf("httpx: unknown checksum algorithm %q", c.Algorithm))
	}
	return a.new()
}

// String formats c as "algorithm:hex" with lower-case hex, the form
// ParseChecksum accepts.
func (c Checksum) String() string {
	return c.Algorithm + ":" + hex.EncodeToString(c.Sum)
}

// ParseReprDigest parses a Repr-Digest (or Content-Digest) field value, an
// RFC 8941 Dictionary such as "sha-256=:BASE64:, sha-512=:BASE64:" (RFC 9530).
// Only sha-256 and sha-512 are returned; members with other or insecure
// algorithms, and malformed members, are skipped rather than failing the
// whole field. Member parameters are ignored. When an algorithm appears
// twice, the last well-formed value wins (RFC 8941 §3.2). The result keeps
// the order of first appearance and is nil when nothing usable is present.
func ParseReprDigest(header string) []Checksum {
	var out []Checksum
	index := make(map[string]int)
	for _, member := range splitMembers(header) {
		key, value, ok := strings.Cut(member, "=")
		if !ok {
			continue
		}
		alg, ok := reprAlgorithms[strings.ToLower(key)]
		if !ok {
			continue
		}
		sum, ok := parseByteSequence(value)
		if !ok || len(sum) != algorithms[alg].size {
			continue
		}
		c := Checksum{Algorithm: alg, Sum: sum}
		if i, dup := index[alg]; dup {
			out[i] = c
		} else {
			index[alg] = len(out)
			out = append(out, c)
		}
	}
	return out
}

// splitMembers splits a Structured Field list or dictionary at top-level
// commas (not inside quoted strings) and trims OWS from each member.
func splitMembers(s string) []string {
	var members []string
	start, inQuote := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++ // skip the escaped character
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			members = append(members, trimOWS(s[start:i]))
			start = i + 1
		}
	}
	return append(members, trimOWS(s[start:]))
}

// parseByteSequence decodes an RFC 8941 Byte Sequence ":BASE64:", optionally
// followed by parameters (";key=value…"), which are ignored. Missing '='
// padding is tolerated, as RFC 8941 §4.2.7 asks.
func parseByteSequence(v string) ([]byte, bool) {
	if len(v) < 2 || v[0] != ':' {
		return nil, false
	}
	end := strings.IndexByte(v[1:], ':')
	if end < 0 {
		return nil, false
	}
	b64, rest := v[1:1+end], v[2+end:]
	if rest != "" && rest[0] != ';' {
		return nil, false
	}
	for i := 0; i < len(b64); i++ {
		c := b64[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=') {
			return nil, false
		}
	}
	if sum, err := base64.StdEncoding.DecodeString(b64); err == nil {
		return sum, true
	}
	sum, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "="))
	return sum, err == nil
}
