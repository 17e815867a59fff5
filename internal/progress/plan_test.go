package progress

import (
	"math/rand/v2"
	"testing"
)

func TestSplit(t *testing.T) {
	segs := Split(10<<20, 4, 1<<20)
	if len(segs) != 4 || segs[0].Start != 0 || segs[3].End != 10<<20 {
		t.Fatalf("Split = %+v", segs)
	}
	if segs := Split(3<<20, 8, 1<<20); len(segs) != 3 {
		t.Fatalf("a 3 MiB file in segments of at least 1 MiB: %d segments", len(segs))
	}
	if segs := Split(-1, 8, 1<<20); len(segs) != 1 || segs[0].End != -1 {
		t.Fatalf("unknown size: %+v", segs)
	}
}

// FuzzPlanner drives the planner with random connections that write,
// steal, finish and crash, and checks that every byte is written exactly
// once, with no gaps, whatever the order.
func FuzzPlanner(f *testing.F) {
	f.Add(uint64(1), int64(10<<20), uint8(4))
	f.Add(uint64(7), int64(1<<20+3), uint8(16))
	f.Add(uint64(42), int64(100), uint8(1))
	f.Fuzz(func(t *testing.T, seed uint64, total int64, conns uint8) {
		if total <= 0 || total > 64<<20 || conns == 0 || conns > 32 {
			return
		}
		const minSize = 64 << 10
		rng := rand.New(rand.NewPCG(seed, 1))
		writes := make([]uint8, total)
		segs := Split(total, int(conns), minSize)
		owned := make([]bool, len(segs))
		owner := map[int]int{} // connection -> segment
		for step := 0; step < 100000; step++ {
			c := rng.IntN(int(conns))
			i, busy := owner[c]
			switch {
			case !busy:
				var idx int
				segs, idx = Steal(segs, owned, minSize)
				for len(owned) < len(segs) {
					owned = append(owned, false)
				}
				if idx < 0 {
					continue
				}
				owned[idx], owner[c] = true, idx
			case rng.IntN(50) == 0: // the connection fails or the process crashes
				owned[i] = false
				delete(owner, c)
			default: // write a chunk, clipped at the segment's (maybe shortened) end
				s := &segs[i]
				pos := s.Start + s.Written
				n := min(int64(rng.IntN(128<<10)+1), s.End-pos)
				for b := pos; b < pos+n; b++ {
					writes[b]++
				}
				s.Written += n
				if s.Done() {
					owned[i] = false
					delete(owner, c)
				}
			}
			if allDone(segs) {
				break
			}
		}
		for len(owner) > 0 || !allDone(segs) { // finish what is left, one connection
			for c := range owner {
				owned[owner[c]] = false
				delete(owner, c)
			}
			var idx int
			segs, idx = Steal(segs, owned, minSize)
			if idx < 0 {
				t.Fatalf("work left but nothing to steal: %+v", segs)
			}
			s := &segs[idx]
			for b := s.Start + s.Written; b < s.End; b++ {
				writes[b]++
			}
			s.Written = s.End - s.Start
			owned = append(owned, false)[:len(segs)]
		}
		for b, n := range writes {
			if n != 1 {
				t.Fatalf("byte %d written %d times; segments %+v", b, n, segs)
			}
		}
		r := Record{Total: total, Segments: segs}
		if r.Prefix() != total {
			t.Fatalf("prefix %d of %d", r.Prefix(), total)
		}
	})
}

func allDone(segs []Segment) bool {
	for _, s := range segs {
		if !s.Done() {
			return false
		}
	}
	return true
}
