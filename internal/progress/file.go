package progress

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/durl-dev/durl/internal/vfs"
)

// File is an open record file. Its methods are safe for concurrent use.
type File struct {
	mu     sync.Mutex
	fsys   vfs.FS
	path   string
	f      vfs.File
	// nameNotDurable: the file was created and its folder not synced yet.
	nameNotDurable bool
	bootID [16]byte
	seq    uint64
	next   int // durable slot to write next: 1 or 2
}

// Create makes a new record file holding r in the volatile slot, without
// syncing anything: until the first durable checkpoint the file claims
// nothing a power loss could make untrue, and that checkpoint also makes the
// file's name durable.
func Create(fsys vfs.FS, path string, bootID [16]byte, r Record) (*File, error) {
	f, err := fsys.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	pf := &File{f: f, fsys: fsys, path: path, bootID: bootID, next: 1, nameNotDurable: true}
	if err := pf.WriteVolatile(r); err != nil {
		f.Close()
		return nil, err
	}
	return pf, nil
}

// Open opens an existing record file and returns the newest record to
// trust: the volatile slot only if it was written during this boot
// (bootID), else the newest durable checkpoint. Records of another
// generation than gen are ignored. It returns ErrCorrupt when no slot holds
// a record to trust.
func Open(fsys vfs.FS, path string, bootID [16]byte, gen uint64) (*File, Record, error) {
	f, err := fsys.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, Record{}, err
	}
	var best Record
	found := false
	var maxSeq uint64
	buf := make([]byte, SlotSize)
	for slot := 0; slot < 3; slot++ {
		n, _ := f.ReadAt(buf, int64(slot)*SlotSize)
		r, err := Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		maxSeq = max(maxSeq, r.Seq)
		if r.Generation != gen || (slot == 0 && r.BootID != bootID) || (slot > 0 && !r.Durable) {
			continue
		}
		if !found || r.Seq > best.Seq {
			best, found = r, true
		}
	}
	if !found {
		f.Close()
		return nil, Record{}, fmt.Errorf("%w in %s", ErrCorrupt, path)
	}
	pf := &File{f: f, fsys: fsys, path: path, bootID: bootID, seq: maxSeq, next: 1}
	return pf, best, nil
}

// WriteVolatile writes r to the volatile slot, without syncing. The data it
// counts must already have been written (not necessarily synced).
func (pf *File) WriteVolatile(r Record) error {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	return pf.write(0, r, false)
}

// WriteDurable writes r to the next durable slot and syncs it. The data it
// counts must already have been synced. Only one goroutine may call it at a
// time.
func (pf *File) WriteDurable(r Record) error {
	pf.mu.Lock()
	err := pf.write(pf.next, r, true)
	pf.next = 3 - pf.next
	pf.mu.Unlock()
	if err != nil {
		return err
	}
	// Sync outside the lock: volatile writes go on meanwhile (D4).
	if err := pf.f.Sync(); err != nil {
		return err
	}
	if pf.nameNotDurable {
		if err := pf.fsys.SyncDir(filepath.Dir(pf.path)); err != nil {
			return err
		}
		pf.nameNotDurable = false
	}
	return nil
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
	_, err = pf.f.WriteAt(b, int64(slot)*SlotSize)
	return err
}

// Close closes the file.
func (pf *File) Close() error { return pf.f.Close() }
