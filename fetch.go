package durl

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/durl-dev/durl/internal/http1"
	"github.com/durl-dev/durl/internal/httpx"
	"github.com/durl-dev/durl/internal/progress"
	"github.com/durl-dev/durl/internal/vfs"
)

const (
	// bufferSize is the most one read takes. What a read returns is
	// written at once, so nothing received waits for the buffer to fill.
	bufferSize = 128 << 10
	// recordStep is how much a connection writes before it records its
	// progress again (in the volatile slot, which survives a kill). A
	// kill costs a connection at most this plus the read under way:
	// 64 + 128 KiB, within D5's 256 KiB.
	recordStep = 64 << 10
	// overlapSize is how much already-written data is fetched again and
	// compared when the remote has no validator (D2).
	overlapSize = 16 << 10
	// preallocateMin is the smallest file whose space is reserved before
	// the transfer: a smaller one finds a full disk at its first write,
	// just as early.
	preallocateMin = 1 << 20
	// writebackStep is how often the OS is asked to start writing data
	// back, so the syncs of checkpoints stay short.
	writebackStep = 8 << 20
	// maxRestarts bounds how often one run starts over because the remote
	// changed, before giving up with ErrRemoteChanged.
	maxRestarts = 3
	// firstContactAttempts bounds the retries of a download that never
	// got an answer: a wrong host name should fail fast, not retry for
	// hours.
	firstContactAttempts = 3
)

var (
	errStalled     = errors.New("durl: the connection stalled (no data received); reconnecting")
	errNoTaskFile  = errors.New("durl: the task's record was never written")
	errBadRedirect = errors.New("durl: refusing the redirect")
)

// retryableError marks a failed attempt that is worth retrying.
type retryableError struct {
	err        error
	retryAfter time.Duration // the server's Retry-After, 0 if none
	now        bool          // retry at once (e.g. back to the original URL)
	warned     bool          // a warning said what comes next: no EventRetrying
}

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// download is the state of one run of a task. Its connections (workers)
// share it: mu guards what they change. Locks are taken in this order:
// Task.saveMu, download.mu, Task.mu.
type download struct {
	t    *Task
	s    *Session
	pf   *progress.File // in the task file; nil until the task has one
	part vfs.File       // the partial file, locked

	rerunPath string // finishedPath(rec.Request): where a rerun looks for the finished file

	mu     sync.Mutex
	rec    taskRecord      // working copy of the task record
	prog   progress.Record // what is on disk (in the page cache)
	owned  []bool          // owned[i]: a connection is writing segment i
	hash   hash.Hash       // over bytes [0, hashed); nil without a checksum
	sum    httpx.Checksum  // what hash must end as
	hashed int64
	buf    []byte // for reading back what other connections wrote, to hash it

	conns       int         // connections this run may use
	spawn       func(n int) // starts up to n more connections in this round
	spawnLater  bool        // start the others once a sample is on disk
	cp          *checkpointer
	restarts    int
	useOriginal bool        // the final URL failed: go back to the original
	primaryDown bool        // the URL failed for good: only mirrors are used
	origin      int         // the source asked by the plain path (see taskRecord.Origin, nextOrigin)
	nextSource  int         // round robin over the URL and its mirrors
	failures    map[int]int // consecutive failures of each mirror
	answered    bool        // some server answered this run
	deferred    bool        // rec has a generation not written yet (see reset)
	newPartial  bool        // the partial file's name is not durable yet
	unnamed     bool        // part has no name yet (openUnnamed)
	mark        progressMark
	leaveActive func()        // gives the run's place among the active ones to the next
	leftActive  bool          // it did, taking a finishing place (see leaveActiveEarly)
	placed      *finishedMark // the marked file an earlier run put in place (loadPlaced)
	unchanged   bool          // the server said it is unchanged: the run keeps it
}

// run is one run of a task, from taking its locks to completion or error.
func (t *Task) run(ctx context.Context) (err error) {
	s := t.s
	defer t.releaseTaskFile()
	if err := s.active.acquire(ctx, t.Priority); err != nil {
		return err
	}
	leaveActive := sync.OnceFunc(s.active.release)
	defer leaveActive()
	t.mu.Lock()
	d := &download{t: t, s: s, rec: t.rec, conns: connections(t.rec), leaveActive: leaveActive,
		rerunPath: finishedPath(t.rec.Request)}
	if o := t.rec.Origin; o > 0 && o <= len(t.rec.Request.Mirrors) && len(t.rec.Mirrors) == len(t.rec.Request.Mirrors) {
		d.origin = o
	}
	d.rec.Mirrors = slices.Clone(t.rec.Mirrors) // the run changes its own copy
	t.mu.Unlock()
	defer func() {
		if d.leftActive {
			s.finishing.Add(-1)
		}
	}()
	defer d.close()
	if err := t.lockTaskFile(); err != nil {
		return err
	}
	defer func() { t.saveOutcome(ctx, err) }() // before the lock is released
	if err := d.load(); err != nil {
		return err
	}
	t.setState(Running)
	s.emit(t, EventStarted, "", nil)
	if d.rec.State == recFinishing {
		if done, err := d.finishInterrupted(); done || err != nil {
			return err
		}
	}
	if d.rec.State != recActive {
		d.rec.State = recActive
		if err := d.save(); err != nil {
			return err
		}
	}
	return d.transfer(ctx)
}

// load reads the task's progress and opens its partial file.
func (d *download) load() error {
	d.prog = progress.Record{Generation: d.rec.Generation, Total: d.rec.Total}
	d.deferred = !d.t.recorded()
	if d.rec.Request.Checksum != "" {
		d.sum, _ = httpx.ParseChecksum(d.rec.Request.Checksum)
	}
	found, err := d.loadFinished()
	if err != nil {
		return err
	}
	if found { // a killed run left the file complete (see finishedAttr)
		if err := d.loadHash(); err != nil {
			return err
		}
		d.setWritten()
		return nil
	}
	d.loadPlaced()
	if d.rec.Generation > 0 { // generation 0 never wrote any progress
		if pf, err := d.progressFile(); err == nil {
			if prog, err := pf.Load(d.rec.Generation); err == nil {
				d.prog = prog
			}
		} // else nothing to trust: start this generation afresh
	}
	if sums := httpx.ParseReprDigest(d.rec.ReprDigest); d.sum.Algorithm == "" && len(sums) > 0 {
		d.sum = sums[0]
	}
	if d.rec.Path != "" && d.rec.State != recFinishing {
		if _, err := d.openPartial(); err != nil {
			return err
		}
		info, err := d.part.Stat()
		if err != nil {
			return &DiskError{Op: "stat", Path: d.part.Name(), Err: err}
		}
		if info.Size() < d.prog.Prefix() {
			// Only possible if syncing was off and the machine crashed: the
			// record is ahead of the data. Never trust it.
			d.prog.Segments = nil
		}
	}
	if len(d.prog.Segments) == 0 {
		d.prog.Segments = []progress.Segment{{Start: 0, End: d.prog.Total}}
		if d.multi() {
			d.prog.Segments = progress.Split(d.prog.Total, d.conns, minSegment)
		}
	}
	d.owned = make([]bool, len(d.prog.Segments))
	if err := d.loadHash(); err != nil {
		return err
	}
	d.setWritten()
	return nil
}

// loadHash restores the hash from the progress record and catches it up
// with the written prefix, rehashing from zero when the record has none.
func (d *download) loadHash() error {
	if d.sum.Algorithm == "" || d.part == nil {
		return nil
	}
	d.hash, d.hashed = d.sum.New(), 0
	if d.prog.HashOffset <= d.prog.Prefix() && len(d.prog.HashState) > 0 {
		if u, ok := d.hash.(encoding.BinaryUnmarshaler); ok && u.UnmarshalBinary(d.prog.HashState) == nil {
			d.hashed = d.prog.HashOffset
		} else {
			d.hash = d.sum.New()
		}
	}
	return d.catchUpHashLocked()
}

// hashChunkLocked feeds the hash with a chunk just written at off, if it
// continues the hashed prefix, then catches up with the written prefix.
// d.mu is held.
func (d *download) hashChunkLocked(chunk []byte, off int64) error {
	if d.hash == nil {
		return nil
	}
	if off == d.hashed {
		d.hash.Write(chunk)
		d.hashed += int64(len(chunk))
	}
	return d.catchUpHashLocked()
}

// catchUpHashLocked hashes, from the file, the written prefix beyond what
// was hashed: bytes other connections wrote. With one connection it reads
// nothing. d.mu is held.
func (d *download) catchUpHashLocked() error {
	if d.hash == nil {
		return nil
	}
	prefix := d.prog.Prefix()
	if d.hashed >= prefix {
		return nil
	}
	if d.buf == nil {
		d.buf = make([]byte, bufferSize)
	}
	for d.hashed < prefix {
		n := min(int64(len(d.buf)), prefix-d.hashed)
		if _, err := d.part.ReadAt(d.buf[:n], d.hashed); err != nil {
			return diskError("read", d.part.Name(), err)
		}
		d.hash.Write(d.buf[:n])
		d.hashed += n
	}
	return nil
}

// openPartial opens and locks the partial file (D6), creating it and its
// folder if needed. It reports whether the file is new.
func (d *download) openPartial() (created bool, err error) {
	if d.part != nil {
		return false, nil
	}
	path := partialPath(d.rec.Path)
	dir := filepath.Dir(path)
	// O_NOFOLLOW: a symbolic link planted at the partial's name must not
	// lead the download out of its folder.
	const flags = os.O_RDWR | syscall.O_NOFOLLOW
	f, err := d.s.fs.OpenFile(path, flags|os.O_CREATE|os.O_EXCL, 0o644)
	created = err == nil
	if errors.Is(err, fs.ErrNotExist) {
		if err := vfs.MkdirAllDurable(d.s.fs, dir, 0o755); err != nil {
			return false, diskError("create folder", dir, err)
		}
		f, err = d.s.fs.OpenFile(path, flags|os.O_CREATE|os.O_EXCL, 0o644)
		created = err == nil
	}
	if errors.Is(err, fs.ErrExist) {
		f, err = d.s.fs.OpenFile(path, flags, 0)
	}
	if err != nil {
		return false, diskError("create partial file", path, err)
	}
	if err := f.Lock(); err != nil {
		f.Close()
		return false, d.s.lockError(d.t, err, d.rec.Path)
	}
	if err := d.s.holdDest(d.t, d.rec.Path); err != nil {
		f.Close() // a download of the session writes it without a name
		return false, err
	}
	d.mu.Lock()
	d.part, d.unnamed = f, false
	if created {
		d.newPartial = true // see syncPartialName
	}
	d.mu.Unlock()
	return created, nil
}

// dataFile returns the file the data goes to, nil before it is opened,
// and whether it has no name yet. The checkpointer reads them while a
// connection may open the file (reset), so both change under d.mu.
func (d *download) dataFile() (vfs.File, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.part, d.unnamed
}

// setDataFile sets what dataFile returns.
func (d *download) setDataFile(f vfs.File, unnamed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.part, d.unnamed = f, unnamed
}

// openData opens the file that a new generation's data goes to: a file
// without a name where it may be (mayBeUnnamed), else the partial file. It
// reports whether the file is new, and so empty.
func (d *download) openData(total int64, reprDigest string) (created bool, err error) {
	unnamed := d.mayBeUnnamed(total, reprDigest)
	if d.unnamed && !unnamed { // recorded since, or larger now
		d.part.Close()
		d.setDataFile(nil, false)
	}
	if d.part == nil && unnamed {
		if created, err = d.openUnnamed(); created || err != nil {
			return created, err
		}
	}
	return d.openPartial()
}

// mayBeUnnamed reports whether a download's data may go to a file without
// a name until it is complete (openUnnamed): a file of at most recordStep
// bytes, which no record counts on and which is not synced. A kill then
// loses what was written of it, no more than a connection may lose (D5).
// A synced download keeps its partial file, which it marks finished while
// it waits for its flush (leaveActiveEarly), and so does one with a
// checksum, which a mismatch moves aside.
func (d *download) mayBeUnnamed(total int64, reprDigest string) bool {
	return d.s.opts.NoSync && !d.t.recorded() && total >= 0 && total <= recordStep &&
		d.rec.Request.Checksum == "" && reprDigest == ""
}

// openUnnamed opens a file without a name (O_TMPFILE) in the destination's
// folder for the data, which moveIntoPlace names: no partial file to
// create, lock and rename, and no other process can write to it (D6). It
// reports false, opening nothing, where the file system has no such files.
func (d *download) openUnnamed() (bool, error) {
	if err := d.s.holdDest(d.t, d.rec.Path); err != nil {
		return false, err
	}
	dir := filepath.Dir(d.rec.Path)
	const flags = os.O_RDWR | unix.O_TMPFILE
	f, err := d.s.fs.OpenFile(dir, flags, 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		if err := vfs.MkdirAllDurable(d.s.fs, dir, 0o755); err != nil {
			return false, diskError("create folder", dir, err)
		}
		f, err = d.s.fs.OpenFile(dir, flags, 0o644)
	}
	if err != nil {
		return false, nil // the partial file, which reports a failing disk
	}
	d.setDataFile(unnamedFile{File: f, name: d.rec.Path}, true)
	return true, nil
}

// unnamedFile is a file without a name, known by the name it will have.
type unnamedFile struct {
	vfs.File
	name string
}

func (f unnamedFile) Name() string { return f.name }

// syncPartialName makes the name of a partial file this run created
// durable, before the first durable record that counts on its data.
func (d *download) syncPartialName() error {
	d.mu.Lock()
	unsynced, part := d.newPartial, d.part
	d.mu.Unlock()
	if !unsynced {
		return nil
	}
	dir := filepath.Dir(part.Name())
	if err := d.s.syncDir(dir); err != nil {
		return diskError("sync folder", dir, err)
	}
	d.mu.Lock()
	d.newPartial = false
	d.mu.Unlock()
	return nil
}

func lockError(err error, path string) error {
	if errors.Is(err, vfs.ErrLocked) {
		return fmt.Errorf("%w (%s is locked)", ErrLocked, path)
	}
	return diskError("lock", path, err)
}

// restartError asks the coordinator to stop every connection and start the
// download over from zero.
type restartError struct{ reason string }

func (e *restartError) Error() string { return "restart: " + e.reason }

// restart starts the download over from zero, once every connection has
// stopped.
func (d *download) restart(reason string) error {
	if err := d.countRestart(reason); err != nil {
		return err
	}
	// Forget what was known of the remote: the next request asks for the
	// whole file and learns it again.
	return d.reset(-1, "", "", "", false)
}

func (d *download) countRestart(reason string) error {
	d.restarts++
	if d.restarts > maxRestarts {
		return fmt.Errorf("%w: %s, %d times in a row; try again later", ErrRemoteChanged, reason, maxRestarts)
	}
	d.s.emit(d.t, EventRestarted, reason, nil)
	return nil
}

// adopt takes a 200 answer, or the 206 answer to a first range, as the
// start of a new download of the whole file of total bytes: it learns its
// validator and name, empties the partial file and plans the parts.
func (d *download) adopt(resp *http.Response, reason string, total int64) error {
	if reason != "" {
		if err := d.countRestart(reason); err != nil {
			return err
		}
	}
	if d.rec.Path == "" {
		named := resp.Request.URL
		if d.origin > 0 { // named as the URL asked for, where a rerun looks (finishedPath)
			named, _ = url.Parse(d.rec.Request.URL)
		}
		name := httpx.DownloadName(resp.Header.Get("Content-Disposition"), named)
		path := filepath.Join(d.rec.Request.Dest, name)
		if filepath.Dir(path) != d.rec.Request.Dest {
			return fmt.Errorf("durl: the server's file name %q would escape %s", name, d.rec.Request.Dest)
		}
		d.rec.Path = path
	}
	etag, _ := httpx.StrongETag(resp.Header.Get("ETag"))
	lastMod := ""
	if etag == "" {
		if _, ok := httpx.StrongLastModified(resp.Header.Get("Last-Modified"), resp.Header.Get("Date")); ok {
			lastMod = resp.Header.Get("Last-Modified")
		}
	}
	if resp.Header.Get("Content-Encoding") != "" && resp.Header.Get("Content-Encoding") != "identity" {
		total = -1 // Go's transport may have decoded it; trust only what arrives
	}
	ranges := resp.Header.Get("Accept-Ranges") == "bytes" || resp.StatusCode == http.StatusPartialContent
	return d.reset(total, etag, lastMod, resp.Header.Get("Repr-Digest"), ranges)
}

// reset starts the download over with a new generation: the record first
// (so older progress records are ignored), then the partial file, then a
// fresh plan of the file split among the connections. The caller is the
// only connection running.
func (d *download) reset(total int64, etag, lastMod, reprDigest string, ranges bool) error {
	d.mu.Lock()
	d.rec.Generation++
	d.rec.Total, d.rec.ETag, d.rec.LastModified, d.rec.ReprDigest = total, etag, lastMod, reprDigest
	d.rec.AcceptRanges = ranges
	for i := range d.rec.Mirrors { // verified against another version of the file
		d.rec.Mirrors[i] = mirrorState{Dropped: d.rec.Mirrors[i].Dropped}
	}
	d.rec.Origin = d.origin
	if d.origin > 0 && total >= 0 { // the mirror that answered is the reference
		m := &d.rec.Mirrors[d.origin-1]
		m.Verified, m.ETag, m.LastModified = true, etag, lastMod
	}
	// A restart must be durable before any new data is. The first
	// generation has no earlier claims that new data could be paired
	// with: its record is written with the first progress record that
	// counts on it (saveDeferred), or else with "finishing", so a small
	// file needs no write of its own.
	first := d.rec.Generation == 1
	d.deferred = first
	rec := d.recordLocked()
	d.mu.Unlock()
	if first {
		d.t.setRecord(rec)
	} else if err := d.save(); err != nil {
		return err
	}
	created, err := d.openData(total, reprDigest)
	if err != nil {
		return err
	}
	if !created {
		if err := d.part.Truncate(0); err != nil {
			return diskError("truncate", d.part.Name(), err)
		}
	}
	if total >= preallocateMin {
		if err := d.reserve(total); err != nil {
			return err
		}
	}
	segs := []progress.Segment{{Start: 0, End: total}}
	if d.multi() {
		segs = progress.Split(total, d.conns, minSegment)
	}
	d.mu.Lock()
	d.prog = progress.Record{Generation: d.rec.Generation, Total: total, Segments: segs}
	d.owned = make([]bool, len(segs))
	if d.rec.Request.Checksum == "" {
		d.sum = httpx.Checksum{}
		if sums := httpx.ParseReprDigest(reprDigest); len(sums) > 0 {
			d.sum = sums[0]
		}
	}
	d.hash, d.hashed = nil, 0
	if d.sum.Algorithm != "" {
		d.hash = d.sum.New()
	}
	d.mu.Unlock()
	d.setWritten()
	// No progress record yet: the record's new generation already disowns
	// the older ones, and nothing is claimed.
	return nil
}

// reserve makes room for the whole file before the transfer (D9): the file
// system reserves it where it can (fallocate), else durl checks that it
// has that much free. The partial file is empty.
func (d *download) reserve(total int64) error {
	err := d.part.Allocate(total)
	if errors.Is(err, errors.ErrUnsupported) {
		err = nil
		if free, ferr := d.s.fs.Available(filepath.Dir(d.part.Name())); ferr == nil && free < total {
			err = fmt.Errorf("%d bytes needed, %d free: %w", total, free, syscall.ENOSPC)
		}
	}
	if err != nil {
		return diskError("reserve space for", d.part.Name(), err)
	}
	return nil
}

// multi reports whether the file may be fetched over several connections:
// the server honours ranges, the resume has a strong validator, and the
// file is large enough to gain from it.
func (d *download) multi() bool {
	return d.conns > 1 && d.rec.AcceptRanges && (d.rec.ETag != "" || d.rec.LastModified != "") &&
		d.rec.Total >= splitMin(d.rec.Request)
}

// save durably writes the working record and shares it with the Task.
func (d *download) save() error { return d.saveAs(true) }

// saveAs writes the working record, durably or not. A record left
// unwritten by reset counts as written only once a save of its generation
// succeeded: after a failed one, the next progress record saves it again
// rather than count on a task file that may not exist.
func (d *download) saveAs(durable bool) error {
	var gen uint64
	err := d.t.saveRecord(func() taskRecord {
		d.mu.Lock()
		defer d.mu.Unlock()
		gen = d.rec.Generation
		return d.recordLocked()
	}, durable)
	if err == nil {
		d.mu.Lock()
		if d.rec.Generation == gen {
			d.deferred = false
		}
		d.mu.Unlock()
	}
	return err
}

// recordLocked returns a copy of the working record that shares nothing
// the connections change (the mirrors' states). d.mu is held.
func (d *download) recordLocked() taskRecord {
	rec := d.rec
	rec.Mirrors = slices.Clone(d.rec.Mirrors)
	return rec
}

// progressFile returns the progress record in the task file the run
// holds. It fails if the run holds none: the task's record was never
// written (saveDeferred writes it first).
func (d *download) progressFile() (*progress.File, error) {
	f := d.t.taskFile() // before d.mu: a save holds saveMu and takes d.mu
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pf == nil {
		if f == nil {
			return nil, &DiskError{Op: "write progress", Path: d.s.taskPath(d.rec.ID), Err: errNoTaskFile}
		}
		d.pf = progress.New(f, progressBase, d.s.bootID)
	}
	return d.pf, nil
}

// saveDeferred writes the record that reset left unwritten (creating the
// task file of a lazy task), if it still is, before a progress record that
// counts on it.
func (d *download) saveDeferred() error {
	d.mu.Lock()
	deferred := d.deferred
	d.mu.Unlock()
	if !deferred {
		return nil
	}
	return d.saveAs(false)
}

// wait applies the rate limits.
func (d *download) wait(ctx context.Context, n int) error {
	for _, l := range []*rate.Limiter{d.t.limiter, d.s.limiter} {
		if err := l.WaitN(ctx, n); err != nil {
			return context.Cause(ctx)
		}
	}
	return nil
}

// progressToWrite returns the progress file and a snapshot of the progress
// to write to it, after writing the task's record if reset left it
// unwritten: a progress record counts on it.
func (d *download) progressToWrite() (*progress.File, progress.Record, error) {
	if err := d.saveDeferred(); err != nil {
		return nil, progress.Record{}, err
	}
	pf, err := d.progressFile()
	if err != nil {
		return nil, progress.Record{}, err
	}
	return pf, d.snapshot(pf), nil
}

// snapshot returns a copy of the progress, with the hash state, to write
// to pf. It is stamped while d.mu is held: of two records, the one that
// counts more is stamped later (see progress.File.Stamp).
func (d *download) snapshot(pf *progress.File) progress.Record {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.prog.Clone()
	if d.hash != nil {
		if m, ok := d.hash.(encoding.BinaryMarshaler); ok {
			if st, err := m.MarshalBinary(); err == nil {
				r.HashOffset, r.HashState = d.hashed, st
			}
		}
	}
	pf.Stamp(&r)
	return r
}

func (d *download) written() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.prog.Written()
}

func (d *download) setWritten() {
	w := d.written()
	d.t.mu.Lock()
	d.t.written = w
	d.t.mu.Unlock()
}

// verify checks the complete file against its checksum, if it has one,
// and keeps it aside if it does not match.
func (d *download) verify() error {
	if d.hash == nil {
		return nil
	}
	if d.hashed != d.prog.Total {
		return fmt.Errorf("durl: internal error: hashed %d of %d bytes", d.hashed, d.prog.Total)
	}
	if got := d.hash.Sum(nil); !bytes.Equal(got, d.sum.Sum) {
		return d.keepAside(got)
	}
	return nil
}

// finalize moves the complete, verified file to its destination (D3):
// sync, mark finishing, rename, sync the folder, mark completed.
func (d *download) finalize() error {
	if err := d.s.syncData(d.part); err != nil {
		return diskError("sync", d.part.Name(), err)
	}
	if !d.t.recorded() {
		// A lazy task that never needed a record: a crash before the
		// rename leaves a partial file no record counts on, after it the
		// complete file; nothing to recognise either way.
		return d.moveIntoPlace()
	}
	if err := d.syncPartialName(); err != nil {
		return err
	}
	d.rec.State = recFinishing
	if err := d.save(); err != nil {
		return err
	}
	return d.moveIntoPlace()
}

// moveIntoPlace moves the verified file to the destination.
func (d *download) moveIntoPlace() error {
	d.markPlaced() // before the rename: a file in place always has its mark
	if err := d.place(); err != nil {
		return err
	}
	if err := d.s.syncDir(filepath.Dir(d.rec.Path)); err != nil {
		return diskError("sync folder", filepath.Dir(d.rec.Path), err)
	}
	// Not synced: if a power loss takes this save, the record says
	// "finishing", and the next run finds the file in place (D3).
	return d.completed()
}

// place renames the partial file to the destination, or gives the file
// without a name the destination's name. Where a file is in place already,
// that file's data goes to the partial file first, which then replaces it.
func (d *download) place() error {
	if d.unnamed {
		err := d.part.Link(d.rec.Path)
		if err == nil {
			d.setDataFile(d.part, false)
			return nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return diskError("link", d.rec.Path, err)
		}
		if err := d.nameUnnamed(); err != nil {
			return err
		}
	}
	part := partialPath(d.rec.Path)
	if err := d.s.fs.Rename(part, d.rec.Path); err != nil {
		return diskError("rename", part, err)
	}
	return nil
}

// nameUnnamed copies the data of the file without a name, complete and at
// most recordStep bytes, to the partial file, which it creates or takes
// over (locked, D6), and marks it.
func (d *download) nameUnnamed() error {
	unnamed := d.part
	defer unnamed.Close()
	d.setDataFile(nil, false)
	if _, err := d.openPartial(); err != nil {
		return err
	}
	data := make([]byte, d.prog.Total)
	if _, err := unnamed.ReadAt(data, 0); err != nil {
		return diskError("read", unnamed.Name(), err)
	}
	if err := d.part.Truncate(0); err != nil {
		return diskError("truncate", d.part.Name(), err)
	}
	if _, err := d.part.WriteAt(data, 0); err != nil {
		return diskError("write", d.part.Name(), err)
	}
	d.markPlaced()
	return nil
}

// completed records that the download is complete, its file in place.
func (d *download) completed() error {
	d.mu.Lock()
	d.rec.State = recCompleted
	d.rec.Error, d.rec.ErrorKind = "", ""
	rec := d.recordLocked()
	d.mu.Unlock()
	if !d.t.recorded() {
		d.t.setRecord(rec)
		return nil
	}
	return d.saveAs(false)
}

// finishInterrupted completes a task that crashed while finishing: the
// rename either happened or it did not (D3). It reports done=false when
// the data is gone and the download must start over.
func (d *download) finishInterrupted() (done bool, err error) {
	part := partialPath(d.rec.Path)
	if info, err := d.s.fs.Stat(part); err == nil && info.Size() == d.rec.Total {
		return true, d.moveIntoPlace()
	}
	if info, err := d.s.fs.Stat(d.rec.Path); err == nil && info.Size() == d.rec.Total {
		d.rec.State = recCompleted
		return true, d.save()
	}
	d.rec.State = recActive
	return false, d.reset(d.rec.Total, d.rec.ETag, d.rec.LastModified, d.rec.ReprDigest, d.rec.AcceptRanges)
}

// keepAside moves a file that failed its checksum out of the way.
func (d *download) keepAside(got []byte) error {
	aside := besideName(d.rec.Path, mismatchSuffix)
	if err := d.s.fs.Rename(partialPath(d.rec.Path), aside); err != nil {
		return diskError("rename", aside, err)
	}
	d.rec.State = recFailed
	d.rec.ErrorKind = errorKind(ErrChecksumMismatch)
	d.rec.Error = fmt.Sprintf("checksum mismatch: expected %s, got %s:%x; the file is kept as %s",
		d.sum, d.sum.Algorithm, got, aside)
	d.save()
	return fmt.Errorf("%w: expected %s, got %s:%x; the file is kept as %s", ErrChecksumMismatch,
		d.sum, d.sum.Algorithm, got, aside)
}

// close closes the partial file (the run closes the task file).
func (d *download) close() {
	if d.part != nil {
		d.part.Close()
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufferSize); return &b }}

// stallReader pushes the stall deadline back whenever data arrives.
type stallReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.timer.Reset(s.d)
	}
	return n, err
}

// classifyNetError turns a failed request or read into a retryable error,
// unless retrying cannot help.
func classifyNetError(err error, ctx context.Context) error {
	if cause := context.Cause(ctx); cause != nil {
		if errors.Is(cause, errStalled) {
			return &retryableError{err: errStalled}
		}
		return cause
	}
	if errors.Is(err, errBadRedirect) || isCertificateError(err) {
		return fmt.Errorf("durl: %w", err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = errors.New("durl: the connection ended before the whole answer arrived")
	}
	return &retryableError{err: err}
}

// isCertificateError reports a TLS certificate that will not verify:
// retrying cannot fix it.
func isCertificateError(err error) bool {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var cv *tls.CertificateVerificationError
	return errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) || errors.As(err, &cv)
}

// diskError is the error of a disk operation op on path. What to do about
// it is for the caller to say: a program and a command line differ.
func diskError(op, path string, err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return &DiskError{Op: op, Path: path, Err: fmt.Errorf("the disk is full (%w)", err)}
	}
	return &DiskError{Op: op, Path: path, Err: err}
}

// httpClient returns the client of a session: the given one or a default,
// with durl's redirect policy.
func httpClient(opts Options) *http.Client {
	var c http.Client
	if opts.Client != nil {
		c = *opts.Client
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DisableCompression = true
		// Room for a response's headers and a 64 KiB body: a small file
		// then takes one read and one write. Larger reads bypass it.
		tr.ReadBufferSize = 68 << 10
		tr.ResponseHeaderTimeout = opts.StallTimeout
		tr.MaxIdleConnsPerHost = opts.MaxConnsPerHost // reuse connections across many small files
		// Plain http GETs run on the caller's goroutine (see http1); https
		// and proxied requests take net/http's Transport.
		c.Transport = http1.New(tr)
	}
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return fmt.Errorf("%w: stopped after 10 redirects", errBadRedirect)
		}
		if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
			return fmt.Errorf("%w to %s: only http and https are followed", errBadRedirect, req.URL.Redacted())
		}
		return nil
	}
	return &c
}

// checkURL accepts absolute http and https URLs.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("durl: bad URL %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("durl: bad URL %q: only http:// and https:// URLs can be downloaded", raw)
	}
	return nil
}

func parseChecksum(s string) (httpx.Checksum, error) {
	c, err := httpx.ParseChecksum(s)
	if err != nil {
		return c, fmt.Errorf("durl: bad checksum %q (want ALG:HEX, e.g. sha256:9f86…): %w", s, err)
	}
	return c, nil
}
