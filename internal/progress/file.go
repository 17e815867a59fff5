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
	seq    uint64
	next   int // durable slot to write next: 1 or 2
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

// WriteVolatile writes r to the volatile slot, without syncing. The data it
// counts must already have been written (not necessarily synced).
func (pf *File) WriteVolatile(r Record) error {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	return pf.write(0, r, false)
}

// WriteDurable writes r to the next durable slot and syncs the file. The
// data it counts must already have been synced.
func (pf *File) WriteDurable(r Record) error {
	pf.mu.Lock()
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
	pf.seq++
	r.Seq = pf.seq
	r.BootID = pf.bootID
	r.Durable = durable
	b, err := r.Marshal()
	if err != nil {
		return err
	}
	_, err = pf.f.WriteAt(b, pf.base+int64(slot)*SlotSize)
	return err
}
