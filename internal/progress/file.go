package progress

import (
	"fmt"
	"sync"

	"github.com/durl-dev/durl/internal/vfs"
)

// Size is the room the record's three slots take in their file.
const Size = 3 * SlotSize

// File is a progress record stored at offset base of a file it does not
// own (durl keeps it in the task's file). Its methods are safe for
// concurrent use, except that only one goroutine may call WriteDurable.
type File struct {
	mu     sync.Mutex
	f      vfs.File
	base   int64
	bootID [16]byte
	seq    uint64 // the last sequence number stamped or seen
	volSeq uint64 // the sequence number of the record in the volatile slot
	next   int    // durable slot to write next: 1 or 2
}

// New returns the progress record at offset base of f, for a process
// running in the boot bootID.
func New(f vfs.File, base int64, bootID [16]byte) *File {
	return &File{f: f, base: base, bootID: bootID, next: 1}
}

// Load returns the newest record to trust: the volatile slot only if it
// was written during this boot, else the newest durable checkpoint. Records
// of another generation than gen are ignored. It returns ErrCorrupt when no
// slot holds a record to trust (a new task, or one that never reached a
// checkpoint).
func (pf *File) Load(gen uint64) (Record, error) {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	var best Record
	found := false
	buf := make([]byte, SlotSize)
	for slot := 0; slot < 3; slot++ {
		n, _ := pf.f.ReadAt(buf, pf.base+int64(slot)*SlotSize)
		r, err := Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		pf.seq = max(pf.seq, r.Seq)
		if r.Generation != gen || (slot == 0 && r.BootID != pf.bootID) || (slot > 0 && !r.Durable) {
			continue
		}
		if !found || r.Seq > best.Seq {
			best, found = r, true
		}
	}
	if !found {
		return Record{}, fmt.Errorf("%w: no record of generation %d to trust", ErrCorrupt, gen)
	}
	return best, nil
}

// Stamp gives r the next sequence number. Load trusts the record stamped
// last, whichever was written last: a checkpoint's record is taken before
// its sync and written after it, and volatile records written meanwhile
// are newer. Callers take a snapshot and stamp it under one lock, so that
// the stamps follow the snapshots' order.
func (pf *File) Stamp(r *Record) {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	r.Seq = 0
	pf.stampLocked(r)
}

// stampLocked stamps r unless it is stamped. pf.mu is held.
func (pf *File) stampLocked(r *Record) {
	if r.Seq == 0 {
		pf.seq++
		r.Seq = pf.seq
	}
}

// WriteVolatile writes r to the volatile slot, without syncing, stamping
// it first if it is not; it writes nothing if a record stamped later is
// there already. The data it counts must already have been written (not
// necessarily synced).
func (pf *File) WriteVolatile(r Record) error {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	pf.stampLocked(&r)
	if r.Seq <= pf.volSeq {
		return nil
	}
	pf.volSeq = r.Seq
	return pf.write(0, r, false)
}

// WriteDurable writes r to the next durable slot and syncs the file,
// stamping r first if it is not. The data it counts must already have been
// synced.
func (pf *File) WriteDurable(r Record) error {
	pf.mu.Lock()
	pf.stampLocked(&r)
	err := pf.write(pf.next, r, true)
	pf.next = 3 - pf.next
	pf.mu.Unlock()
	if err != nil {
		return err
	}
	// Sync outside the lock: volatile writes go on meanwhile (D4).
	return pf.f.Sync()
}

func (pf *File) write(slot int, r Record, durable bool) error {
	r.BootID = pf.bootID
	r.Durable = durable
	b, err := r.Marshal()
	if err != nil {
		return err
	}
	_, err = pf.f.WriteAt(b, pf.base+int64(slot)*SlotSize)
	return err
}
