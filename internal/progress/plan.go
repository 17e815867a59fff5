package progress

// Split divides [0, total) into n segments of nearly equal size, none
// smaller than minSize (fewer segments when the file is small).
func Split(total int64, n int, minSize int64) []Segment {
	if total <= 0 || n < 1 {
		return []Segment{{Start: 0, End: total}}
	}
	if minSize > 0 && int64(n) > total/minSize {
		n = int(max(total/minSize, 1))
	}
	segs := make([]Segment, n)
	for i := range segs {
		segs[i] = Segment{Start: total * int64(i) / int64(n), End: total * int64(i+1) / int64(n)}
	}
	return segs
}

// MaxSegments is the most segments a record holds; stealing stops there.
const MaxSegments = maxSegments

// Steal picks work for an idle connection. It returns the index of a
// segment that is neither done nor owned; failing that, it splits the owned
// segment with the most bytes left in two, shortening it, and returns the
// index of the new second half (a segment of unknown end is never split) (appended to segs). The split leaves the
// current owner at least minSize bytes, so the bytes it is writing now stay
// its own: every byte is written by exactly one connection. It returns -1
// when there is nothing worth taking. owned[i] says whether segment i has a
// connection; the caller appends to owned when a segment is added.
func Steal(segs []Segment, owned []bool, minSize int64) ([]Segment, int) {
	for i, s := range segs {
		if !s.Done() && !owned[i] {
			return segs, i
		}
	}
	best, bestLeft := -1, int64(0)
	for i, s := range segs {
		if owned[i] && s.End >= 0 {
			if left := s.End - (s.Start + s.Written); left > bestLeft {
				best, bestLeft = i, left
			}
		}
	}
	if best < 0 || bestLeft < 2*minSize || len(segs) >= MaxSegments {
		return segs, -1
	}
	victim := &segs[best]
	mid := victim.Start + victim.Written + bestLeft/2
	tail := Segment{Start: mid, End: victim.End}
	victim.End = mid
	return append(segs, tail), len(segs)
}
