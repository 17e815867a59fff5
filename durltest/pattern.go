package durltest

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// golden is 2^64 divided by the golden ratio, the odd constant of splitmix64.
const golden = 0x9e3779b97f4a7c15

// mix64 is the splitmix64 finalizer: a cheap bijection of uint64 whose output
// bits all depend on all input bits.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// seedKey turns a seed into the key of its byte stream.
func seedKey(seed uint64) uint64 { return mix64(seed + golden) }

// word returns the 8 bytes at offsets 8*i .. 8*i+7 (little-endian) of the stream with the given key.
func word(key, i uint64) uint64 { return mix64(key + i*golden) }

// Pattern returns the byte at offset off (off >= 0) of the deterministic
// pseudo-random body with the given seed.
//
// Bodies of different seeds differ at about 255 offsets in 256, and a body
// never matches itself shifted, so gluing two versions or writing at a wrong
// offset is detected. Bodies of one seed but different sizes share their
// prefix, like a file that grew or was truncated.
func Pattern(seed uint64, off int64) byte {
	pos := uint64(off)
	return byte(word(seedKey(seed), pos>>3) >> (8 * (pos & 7)))
}

// Fill fills dst with the bytes at offsets off .. off+len(dst)-1 of the body
// with the given seed. It is much faster than calling Pattern for each byte.
func Fill(dst []byte, seed uint64, off int64) {
	key := seedKey(seed)
	pos := uint64(off)
	i := 0
	for ; i < len(dst) && pos&7 != 0; i, pos = i+1, pos+1 {
		dst[i] = byte(word(key, pos>>3) >> (8 * (pos & 7)))
	}
	for ; len(dst)-i >= 8; i, pos = i+8, pos+8 {
		binary.LittleEndian.PutUint64(dst[i:], word(key, pos>>3))
	}
	for ; i < len(dst); i, pos = i+1, pos+1 {
		dst[i] = byte(word(key, pos>>3) >> (8 * (pos & 7)))
	}
}

// Content returns the whole body of the given seed and size.
func Content(seed uint64, size int64) []byte {
	b := make([]byte, size)
	Fill(b, seed, 0)
	return b
}

// patternReaderAt reads the body of one seed and size.
type patternReaderAt struct {
	seed uint64
	size int64
}

// ReadAt implements io.ReaderAt.
func (p patternReaderAt) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("durltest: negative offset")
	}
	if off >= p.size {
		return 0, io.EOF
	}
	n := len(b)
	if rest := p.size - off; int64(n) > rest {
		n = int(rest)
	}
	Fill(b[:n], p.seed, off)
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// NewReader returns a reader of the body of the given seed and size, without
// holding it in memory. It implements io.Reader, io.ReaderAt and io.Seeker.
func NewReader(seed uint64, size int64) *io.SectionReader {
	return io.NewSectionReader(patternReaderAt{seed, size}, 0, size)
}

// Digest returns the SHA-256 of Content(seed, size), computed in a streaming
// fashion without holding the body in memory.
func Digest(seed uint64, size int64) [32]byte {
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for off := int64(0); off < size; {
		n := int64(len(buf))
		if size-off < n {
			n = size - off
		}
		Fill(buf[:n], seed, off)
		h.Write(buf[:n])
		off += n
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// Verify checks that r holds exactly the body of the given seed and size: the
// same bytes, and nothing after them. The error names the first differing
// offset. Use bytes.NewReader to verify a []byte, or VerifyFile for a file.
func Verify(r io.ReaderAt, seed uint64, size int64) error {
	got := make([]byte, 64<<10)
	want := make([]byte, len(got))
	for off := int64(0); off < size; {
		n := int64(len(got))
		if size-off < n {
			n = size - off
		}
		m, err := r.ReadAt(got[:n], off)
		Fill(want[:m], seed, off)
		for i := 0; i < m; i++ {
			if got[i] != want[i] {
				return fmt.Errorf("durltest: byte at offset %d is 0x%02x, want 0x%02x (seed %d)",
					off+int64(i), got[i], want[i], seed)
			}
		}
		if int64(m) < n {
			if err == nil || err == io.EOF {
				return fmt.Errorf("durltest: content ends at offset %d, want size %d", off+int64(m), size)
			}
			return fmt.Errorf("durltest: reading at offset %d: %w", off+int64(m), err)
		}
		off += n
	}
	var one [1]byte
	if n, _ := r.ReadAt(one[:], size); n > 0 {
		return fmt.Errorf("durltest: content is longer than %d bytes", size)
	}
	return nil
}

// VerifyFile is Verify for the file at path.
func VerifyFile(path string, seed uint64, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return Verify(f, seed, size)
}
