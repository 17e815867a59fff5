// Package spans does arithmetic on byte ranges of a file, for the tests and
// benchmarks that measure what a download had written and fetched again.
package spans

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Span is the byte range [From, To) of a file.
type Span struct{ From, To int64 }

// Len returns the number of bytes in s, 0 if it is empty.
func (s Span) Len() int64 { return max(s.To-s.From, 0) }

// Asked returns the bytes of a file of size bytes that a Range header
// "bytes=N-M" or "bytes=N-" (to the end) asks for; the whole file for no
// header.
func Asked(rangeHeader string, size int64) Span {
	spec, ok := strings.CutPrefix(strings.TrimSpace(rangeHeader), "bytes=")
	if !ok {
		return Span{From: 0, To: size}
	}
	first, last, _ := strings.Cut(spec, "-")
	from, _ := strconv.ParseInt(first, 10, 64)
	to := size
	if n, err := strconv.ParseInt(last, 10, 64); err == nil {
		to = n + 1
	}
	return Span{From: from, To: to}
}

// Union sorts ss and merges the spans that overlap or touch, leaving out
// empty ones. It does not change ss.
func Union(ss []Span) []Span {
	ss = slices.Clone(ss)
	slices.SortFunc(ss, func(a, b Span) int { return cmp.Compare(a.From, b.From) })
	var out []Span
	for _, s := range ss {
		if s.Len() == 0 {
			continue
		}
		if n := len(out); n > 0 && s.From <= out[n-1].To {
			out[n-1].To = max(out[n-1].To, s.To)
			continue
		}
		out = append(out, s)
	}
	return out
}

// Overlap returns how many bytes a and b have in common, each counted
// once.
func Overlap(a, b []Span) int64 {
	a, b = Union(a), Union(b)
	var n int64
	for i, j := 0, 0; i < len(a) && j < len(b); {
		if lo, hi := max(a[i].From, b[j].From), min(a[i].To, b[j].To); hi > lo {
			n += hi - lo
		}
		if a[i].To < b[j].To {
			i++
		} else {
			j++
		}
	}
	return n
}

// minRun is the shortest run of matching bytes Written counts: unwritten
// space reads as zeros, which match the content's own zero bytes now and
// then.
const minRun = 64

// Written returns the spans of the file at path that hold want's bytes at
// the same offsets: what a download had written into it. Space never
// written reads as zeros, so a 4 KiB block of zeros counts as unwritten,
// and so do matching runs shorter than 64 bytes. The file is compared up to
// the shorter of the two. Only its data is read (SEEK_DATA): reading the
// space reserved but unwritten would make the file system count it as data
// from then on.
func Written(path string, want io.ReaderAt) ([]Span, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	w := writtenScan{got: make([]byte, chunk), exp: make([]byte, chunk)}
	for off := int64(0); off < st.Size(); {
		from, to, err := nextData(f, off, st.Size())
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if from >= to {
			break
		}
		more, err := w.compare(f, want, from, to)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if !more {
			break
		}
		off = to
	}
	return slices.DeleteFunc(w.out, func(s Span) bool { return s.Len() < minRun }), nil
}

const block, chunk = 4 << 10, 1 << 20

var zeros = make([]byte, block)

// nextData returns the next run of data of f at or after off: SEEK_DATA
// and SEEK_HOLE where the file system has them, else the rest of the file.
// from == to means no data is left.
func nextData(f *os.File, off, size int64) (from, to int64, err error) {
	from, err = unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	switch {
	case errors.Is(err, unix.ENXIO):
		return size, size, nil
	case err != nil:
		return off, size, nil
	}
	to, err = unix.Seek(int(f.Fd()), from, unix.SEEK_HOLE)
	if err != nil {
		return from, size, nil
	}
	return from, min(to, size), nil
}

// writtenScan compares a file with its expected content chunk by chunk.
type writtenScan struct {
	got, exp []byte
	out      []Span
}

func (w *writtenScan) add(from, to int64) {
	if n := len(w.out); n > 0 && w.out[n-1].To == from {
		w.out[n-1].To = to
	} else {
		w.out = append(w.out, Span{from, to})
	}
}

// compare compares [from, to) of f with want, and reports whether want
// goes on past it.
func (w *writtenScan) compare(f *os.File, want io.ReaderAt, from, to int64) (bool, error) {
	for base := from; base < to; base += chunk {
		n, err := f.ReadAt(w.got[:min(chunk, to-base)], base)
		if err != nil && !errors.Is(err, io.EOF) {
			return false, err
		}
		m, err := want.ReadAt(w.exp[:n], base)
		if err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("the expected content: %w", err)
		}
		for off := 0; off < m; off += block {
			end := min(off+block, m)
			g, e := w.got[off:end], w.exp[off:end]
			switch {
			case bytes.Equal(g, e):
				w.add(base+int64(off), base+int64(end))
			case bytes.Equal(g, zeros[:len(g)]):
			default:
				for i := range g {
					if g[i] == e[i] {
						w.add(base+int64(off+i), base+int64(off+i+1))
					}
				}
			}
		}
		if m < n {
			return false, nil
		}
	}
	return true, nil
}
