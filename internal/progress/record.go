// Package progress keeps a download's progress record: which byte ranges of
// the partial file hold data, and the hash state of the written prefix.
//
// The record file has three fixed slots. Slot 0 is rewritten as data is
// written (durl: every 64 KiB) and never synced: it survives the death of
// the process (the page cache keeps it) but not a power loss, so it carries
// the boot id and is trusted only when the machine has not rebooted since.
// Slots 1 and 2 take turns holding durable checkpoints, each written after
// the data it counts was synced, and synced itself; a torn write of one
// leaves the other. Every slot carries a CRC, so a torn or garbage slot is
// ignored, never believed.
package progress

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Segment is one range of the file assigned to one connection: bytes
// [Start, Start+Written) are on disk; End is the exclusive end of the range,
// or -1 when the file's size is unknown.
type Segment struct {
	Start, End, Written int64
}

// Done reports whether the segment has all its bytes.
func (s Segment) Done() bool { return s.End >= 0 && s.Start+s.Written >= s.End }

// Record is a snapshot of a download's progress.
type Record struct {
	// Seq orders records: the one with the highest valid Seq wins.
	Seq uint64
	// Generation is the task's generation: it changes when the download
	// starts over, so records of an earlier attempt are ignored.
	Generation uint64
	// BootID identifies the boot during which the record was written.
	BootID [16]byte
	// Durable is set on checkpoints written after syncing the data.
	Durable bool
	// Total is the size of the file, -1 when unknown.
	Total int64
	// Segments are the ranges of the file and how much of each is written.
	Segments []Segment
	// HashState is the marshalled state of the hash over the first
	// HashOffset bytes of the file, or empty.
	HashOffset int64
	HashState  []byte
}

// Written is the number of bytes written over all segments.
func (r *Record) Written() int64 {
	var n int64
	for _, s := range r.Segments {
		n += s.Written
	}
	return n
}

// Prefix is the length of the contiguous run of written bytes from offset 0.
func (r *Record) Prefix() int64 {
	var end int64
	for {
		advanced := false
		for _, s := range r.Segments {
			if s.Start <= end && s.Start+s.Written > end {
				end = s.Start + s.Written
				advanced = true
			}
		}
		if !advanced {
			return end
		}
	}
}

// Clone returns a deep copy.
func (r *Record) Clone() Record {
	c := *r
	c.Segments = append([]Segment(nil), r.Segments...)
	c.HashState = append([]byte(nil), r.HashState...)
	return c
}

const (
	// SlotSize is the size of one slot of the record file.
	SlotSize = 4096
	magic    = "DPRG"
	version  = 1
	// header: magic(4) version(2) length(4)
	headerSize  = 10
	maxSegments = 128
)

// ErrCorrupt is returned for a slot that is empty, torn or not a record.
var ErrCorrupt = errors.New("progress: corrupt record")

// Marshal encodes r into one slot.
func (r *Record) Marshal() ([]byte, error) {
	if len(r.Segments) > maxSegments {
		return nil, fmt.Errorf("progress: %d segments, at most %d", len(r.Segments), maxSegments)
	}
	b := make([]byte, headerSize, SlotSize)
	copy(b, magic)
	binary.LittleEndian.PutUint16(b[4:], version)
	b = binary.LittleEndian.AppendUint64(b, r.Seq)
	b = binary.LittleEndian.AppendUint64(b, r.Generation)
	b = append(b, r.BootID[:]...)
	durable := byte(0)
	if r.Durable {
		durable = 1
	}
	b = append(b, durable)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.Total))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(r.Segments)))
	for _, s := range r.Segments {
		b = binary.LittleEndian.AppendUint64(b, uint64(s.Start))
		b = binary.LittleEndian.AppendUint64(b, uint64(s.End))
		b = binary.LittleEndian.AppendUint64(b, uint64(s.Written))
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(r.HashOffset))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(r.HashState)))
	b = append(b, r.HashState...)
	if len(b)+4 > SlotSize {
		return nil, fmt.Errorf("progress: record of %d bytes does not fit a slot", len(b)+4)
	}
	binary.LittleEndian.PutUint32(b[6:], uint32(len(b)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return b, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Unmarshal decodes one slot, checking its CRC and every field.
func Unmarshal(b []byte) (Record, error) {
	var r Record
	if len(b) < headerSize+4 || string(b[:4]) != magic {
		return r, ErrCorrupt
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != version {
		return r, fmt.Errorf("%w: version %d", ErrCorrupt, v)
	}
	n := int(binary.LittleEndian.Uint32(b[6:]))
	if n < headerSize || n+4 > len(b) {
		return r, ErrCorrupt
	}
	if crc32.Checksum(b[:n], castagnoli) != binary.LittleEndian.Uint32(b[n:]) {
		return r, fmt.Errorf("%w: checksum", ErrCorrupt)
	}
	d := decoder{b: b[headerSize:n]}
	r.Seq = d.u64()
	r.Generation = d.u64()
	copy(r.BootID[:], d.bytes(16))
	r.Durable = d.bytes(1)[0] == 1
	r.Total = int64(d.u64())
	nseg := int(d.u16())
	if nseg > maxSegments {
		return r, ErrCorrupt
	}
	for i := 0; i < nseg && d.err == nil; i++ {
		s := Segment{Start: int64(d.u64()), End: int64(d.u64()), Written: int64(d.u64())}
		r.Segments = append(r.Segments, s)
	}
	r.HashOffset = int64(d.u64())
	r.HashState = append([]byte(nil), d.bytes(int(d.u16()))...)
	if d.err != nil || len(d.b) != 0 {
		return Record{}, ErrCorrupt
	}
	if err := r.validate(); err != nil {
		return Record{}, err
	}
	return r, nil
}

func (r *Record) validate() error {
	if r.Total < -1 || r.HashOffset < 0 {
		return ErrCorrupt
	}
	for _, s := range r.Segments {
		if s.Start < 0 || s.Written < 0 || (s.End >= 0 && (s.End < s.Start || s.Start+s.Written > s.End)) ||
			(s.End < 0 && r.Total >= 0) || (r.Total >= 0 && s.End > r.Total) {
			return ErrCorrupt
		}
	}
	return nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil || n > len(d.b) {
		d.err = ErrCorrupt
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u64() uint64 { return binary.LittleEndian.Uint64(d.bytes(8)) }
func (d *decoder) u16() uint16 { return binary.LittleEndian.Uint16(d.bytes(2)) }
