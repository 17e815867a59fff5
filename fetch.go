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
	"sync"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"github.com/durl-dev/durl/internal/httpx"
	"github.com/durl-dev/durl/internal/progress"
	"github.com/durl-dev/durl/internal/retry"
	"github.com/durl-dev/durl/internal/vfs"
)

const (
	// bufferSize is the most one read takes before it is written and
	// recorded: at most this much is lost per connection when the process
	// is killed (D5). What a read returns is written at once, so nothing
	// received waits for the buffer to fill.
	bufferSize = 128 << 10
	// overlapSize is how much already-written data is fetched again and
	// compared when the remote has no validator (D2).
	overlapSize = 16 << 10
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
	errRestart     = errors.New("restart from zero")
	errStalled     = errors.New("durl: the connection stalled (no data received); reconnecting")
	errBadRedirect = errors.New("durl: refusing the redirect")
)

// retryableError marks a failed attempt that is worth retrying.
type retryableError struct {
	err        error
	retryAfter time.Duration // the server's Retry-After, 0 if none
	now        bool          // retry at once (e.g. back to the original URL)
}

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// download is the state of one run of a task.
type download struct {
	t    *Task
	s    *Session
	rec  taskRecord // working copy of the task record
	pf   *progress.File
	part vfs.File // the partial file, locked
	lock vfs.File // the task's lock in the state folder

	mu   sync.Mutex      // guards prog and hash while copying
	prog progress.Record // what is on disk (in the page cache)
	hash hash.Hash       // over the written prefix; nil without a checksum
	sum  httpx.Checksum  // what hash must end as

	restarts    int
	useOriginal bool // the final URL failed: go back to the original
	answered    bool // some server answered this run
	limiter     *rate.Limiter
	mark        progressMark
}

// run is one run of a task, from taking its locks to completion or error.
func (t *Task) run(ctx context.Context) error {
	s := t.s
	if s.slots != nil {
		select {
		case s.slots <- struct{}{}:
			defer func() { <-s.slots }()
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	t.mu.Lock()
	d := &download{t: t, s: s, rec: t.rec}
	t.mu.Unlock()
	defer d.close()
	if d.rec.Request.RateLimit > 0 {
		d.limiter = newLimiter(d.rec.Request.RateLimit)
	}
	lock, err := s.fs.OpenFile(s.lockPath(t.id), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return &DiskError{Op: "open lock", Path: s.lockPath(t.id), Err: err}
	}
	d.lock = lock
	if err := lock.Lock(); err != nil {
		return lockError(err, s.lockPath(t.id))
	}
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

// transfer makes attempts until the file is complete, retrying what is
// worth retrying.
func (d *download) transfer(ctx context.Context) error {
	pol := d.s.opts.Retry
	bo := retry.Backoff{Base: pol.BaseDelay, Max: pol.MaxDelay}
	failures := 0
	lastProgress := time.Now()
	for {
		if d.prog.Total >= 0 && d.prog.Prefix() == d.prog.Total && d.rec.Generation > 0 {
			return d.finalize() // every byte is here already
		}
		before := d.written()
		err := d.attempt(ctx)
		if err == nil {
			return d.finalize()
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if errors.Is(err, errRestart) {
			continue
		}
		var re *retryableError
		if !errors.As(err, &re) {
			return err
		}
		if d.written() > before {
			failures, lastProgress = 0, time.Now()
			bo.Reset()
		}
		failures++
		switch {
		case !d.answered && d.rec.Generation == 0 && failures >= firstContactAttempts,
			pol.MaxAttempts > 0 && failures >= pol.MaxAttempts,
			time.Since(lastProgress) > pol.MaxWait:
			return re.err
		}
		wait := time.Duration(0)
		if !re.now {
			wait = bo.Next(re.retryAfter)
		}
		d.s.emit(d.t, EventRetrying, fmt.Sprintf("attempt %d failed; retrying in %s", failures, wait.Round(time.Millisecond)), re.err)
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return context.Cause(ctx)
		}
	}
}

// load reads the task's progress and opens its partial file.
func (d *download) load() error {
	s := d.s
	pf, prog, err := progress.Open(s.fs, s.progressPath(d.rec.ID), s.bootID, d.rec.Generation)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, progress.ErrCorrupt) {
		return &DiskError{Op: "read progress", Path: s.progressPath(d.rec.ID), Err: err}
	}
	if err != nil {
		prog = progress.Record{Generation: d.rec.Generation, Total: d.rec.Total}
		if pf, err = progress.Create(s.fs, s.progressPath(d.rec.ID), s.bootID, prog); err != nil {
			return &DiskError{Op: "write progress", Path: s.progressPath(d.rec.ID), Err: err}
		}
	}
	d.pf, d.prog = pf, prog
	if d.rec.Request.Checksum != "" {
		d.sum, _ = httpx.ParseChecksum(d.rec.Request.Checksum)
	} else if sums := httpx.ParseReprDigest(d.rec.ReprDigest); len(sums) > 0 {
		d.sum = sums[0]
	}
	if d.rec.Path == "" || d.rec.State == recFinishing {
		return nil
	}
	if err := d.openPartial(); err != nil {
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
	if err := d.loadHash(); err != nil {
		return err
	}
	d.setWritten()
	return nil
}

// loadHash restores the hash of the written prefix from the progress
// record, or rehashes the prefix from the file when the record has none.
func (d *download) loadHash() error {
	if d.sum.Algorithm == "" {
		return nil
	}
	d.hash = d.sum.New()
	prefix := d.prog.Prefix()
	if d.prog.HashOffset == prefix && len(d.prog.HashState) > 0 {
		if u, ok := d.hash.(encoding.BinaryUnmarshaler); ok && u.UnmarshalBinary(d.prog.HashState) == nil {
			return nil
		}
		d.hash = d.sum.New()
	}
	if _, err := io.Copy(d.hash, io.NewSectionReader(d.part, 0, prefix)); err != nil {
		return &DiskError{Op: "read", Path: d.part.Name(), Err: err}
	}
	return nil
}

// openPartial opens and locks the partial file (D6).
func (d *download) openPartial() error {
	if d.part != nil {
		return nil
	}
	path := partialPath(d.rec.Path)
	dir := filepath.Dir(path)
	if _, err := d.s.fs.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := d.s.fs.MkdirAll(dir, 0o755); err != nil {
			return diskError("create folder", dir, err)
		}
		if err := d.s.fs.SyncDir(filepath.Dir(dir)); err != nil {
			return diskError("sync folder", filepath.Dir(dir), err)
		}
	}
	_, statErr := d.s.fs.Stat(path)
	f, err := d.s.fs.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return diskError("create partial file", path, err)
	}
	if err := f.Lock(); err != nil {
		f.Close()
		return lockError(err, path)
	}
	d.part = f
	if statErr != nil {
		// A new file: make its name durable before records count on it.
		if err := d.s.fs.SyncDir(dir); err != nil {
			return diskError("sync folder", dir, err)
		}
	}
	return nil
}

func lockError(err error, path string) error {
	if errors.Is(err, vfs.ErrLocked) {
		return fmt.Errorf("%w (%s is locked)", ErrLocked, path)
	}
	return diskError("lock", path, err)
}

// attempt makes one request and copies its body.
func (d *download) attempt(ctx context.Context) error {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(d.s.opts.StallTimeout, func() { cancel(errStalled) })
	defer stall.Stop()

	off := d.prog.Prefix()
	target, usingFinal := d.rec.Request.URL, false
	if d.rec.FinalURL != "" && !d.useOriginal {
		target, usingFinal = d.rec.FinalURL, true
	}
	req, err := http.NewRequestWithContext(actx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("durl: bad URL %q: %w", target, err)
	}
	for name, values := range d.rec.Request.Header {
		req.Header[http.CanonicalHeaderKey(name)] = values
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", d.s.opts.UserAgent)
	}
	// Identity only: a compressed answer would count bytes of another
	// representation than a ranged one (golang/go#8923).
	req.Header.Set("Accept-Encoding", "identity")
	var overlap int64
	if off > 0 {
		if v := d.validator(); v != "" {
			req.Header.Set("Range", httpx.FormatRange(off, -1))
			req.Header.Set("If-Range", v)
		} else {
			overlap = min(off, overlapSize)
			req.Header.Set("Range", httpx.FormatRange(off-overlap, -1))
		}
	}
	resp, err := d.s.client.Do(req)
	if err != nil {
		if usingFinal {
			d.useOriginal = true
		}
		return classifyNetError(err, actx)
	}
	defer resp.Body.Close()
	d.answered = true
	body := &stallReader{r: resp.Body, timer: stall, d: d.s.opts.StallTimeout}
	if final := resp.Request.URL.String(); final != d.rec.FinalURL && final != d.rec.Request.URL {
		d.rec.FinalURL = final
	}

	switch resp.StatusCode {
	case http.StatusOK:
		reason := ""
		if off > 0 {
			reason = d.why200(resp)
		}
		if err := d.adopt(resp, reason); err != nil {
			return err
		}
		return d.copy(actx, body, 0)

	case http.StatusPartialContent:
		if off == 0 {
			return &retryableError{err: errors.New("durl: the server sent part of the file when the whole was asked for")}
		}
		cr, err := httpx.ParseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return &retryableError{err: fmt.Errorf("durl: the server's 206 answer has a bad Content-Range: %w", err)}
		}
		if reason := d.changed206(resp, cr); reason != "" {
			return d.restart(reason)
		}
		first := off - overlap
		if cr.First > first {
			return d.restart(fmt.Sprintf("the server answered from byte %d when byte %d was asked for", cr.First, first))
		}
		if skip := first - cr.First; skip > 0 {
			if _, err := io.CopyN(io.Discard, body, skip); err != nil {
				return classifyNetError(err, actx)
			}
		}
		if overlap > 0 {
			same, err := d.overlapMatches(body, first, overlap)
			if err != nil {
				return classifyNetError(err, actx)
			}
			if !same {
				return d.restart("the remote file changed: the bytes already downloaded no longer match (the server gives no validator)")
			}
		}
		if err := d.save(); err != nil { // FinalURL may have changed
			return err
		}
		return d.copy(actx, body, off)

	case http.StatusRequestedRangeNotSatisfiable:
		cr, err := httpx.ParseContentRange(resp.Header.Get("Content-Range"))
		etag, _ := httpx.StrongETag(resp.Header.Get("ETag"))
		if err == nil && d.prog.Total >= 0 && cr.Complete == d.prog.Total && off == d.prog.Total &&
			(etag == "" || d.rec.ETag == "" || etag == d.rec.ETag) {
			return nil // every byte is here already
		}
		return d.restart("the server says the requested range is past the end: the remote file shrank or changed")
	}

	serr := &StatusError{StatusCode: resp.StatusCode, Status: resp.Status}
	if usingFinal && resp.StatusCode >= 400 && !serr.Temporary() {
		// A signed or temporary redirect target expired: go back to the
		// URL that was asked for.
		d.useOriginal = true
		return &retryableError{err: serr, now: true}
	}
	if serr.Temporary() {
		wait, _ := httpx.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return &retryableError{err: serr, retryAfter: wait}
	}
	return serr
}

// validator is the If-Range value that makes a resume conditional, or ""
// when the remote has no safe validator.
func (d *download) validator() string {
	if d.rec.ETag != "" {
		return d.rec.ETag
	}
	return d.rec.LastModified
}

// why200 explains a 200 answer to a ranged request.
func (d *download) why200(resp *http.Response) string {
	etag, _ := httpx.StrongETag(resp.Header.Get("ETag"))
	switch {
	case d.rec.ETag != "" && etag != d.rec.ETag:
		return "the remote file changed (its ETag is different)"
	case d.rec.ETag == "" && d.rec.LastModified != "" && resp.Header.Get("Last-Modified") != d.rec.LastModified:
		return "the remote file changed (its Last-Modified date is different)"
	case resp.ContentLength >= 0 && d.rec.Total >= 0 && resp.ContentLength != d.rec.Total:
		return "the remote file changed (its size is different)"
	}
	return "the server does not resume downloads (it ignored the range request)"
}

// changed206 says why a 206 answer shows the remote changed, or "".
func (d *download) changed206(resp *http.Response, cr httpx.ContentRange) string {
	if cr.Complete >= 0 && d.prog.Total >= 0 && cr.Complete != d.prog.Total {
		return fmt.Sprintf("the remote file's size changed from %d to %d bytes", d.prog.Total, cr.Complete)
	}
	if etag, ok := httpx.StrongETag(resp.Header.Get("ETag")); ok && d.rec.ETag != "" && etag != d.rec.ETag {
		return "the remote file changed (its ETag is different)"
	}
	if resp.ContentLength >= 0 && resp.ContentLength != cr.Last-cr.First+1 {
		return "the server's Content-Length and Content-Range disagree"
	}
	return ""
}

// overlapMatches reads n bytes from body and compares them with the file
// at off.
func (d *download) overlapMatches(body io.Reader, off, n int64) (bool, error) {
	got := make([]byte, n)
	if _, err := io.ReadFull(body, got); err != nil {
		return false, err
	}
	have := make([]byte, n)
	if _, err := d.part.ReadAt(have, off); err != nil {
		return false, diskError("read", d.part.Name(), err)
	}
	return bytes.Equal(got, have), nil
}

// restart makes the next attempt start from zero.
func (d *download) restart(reason string) error {
	if err := d.countRestart(reason); err != nil {
		return err
	}
	if err := d.reset(d.rec.Total, d.rec.ETag, d.rec.LastModified, d.rec.ReprDigest); err != nil {
		return err
	}
	return errRestart
}

func (d *download) countRestart(reason string) error {
	d.restarts++
	if d.restarts > maxRestarts {
		return fmt.Errorf("%w: %s, %d times in a row; try again later", ErrRemoteChanged, reason, maxRestarts)
	}
	d.s.emit(d.t, EventRestarted, reason, nil)
	return nil
}

// adopt takes a 200 answer as the start of a new download of the whole
// file: it learns its size, validator and name, and empties the partial
// file.
func (d *download) adopt(resp *http.Response, reason string) error {
	if reason != "" {
		if err := d.countRestart(reason); err != nil {
			return err
		}
	}
	if d.rec.Path == "" {
		name := httpx.DownloadName(resp.Header.Get("Content-Disposition"), resp.Request.URL)
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
	total := resp.ContentLength
	if resp.Header.Get("Content-Encoding") != "" && resp.Header.Get("Content-Encoding") != "identity" {
		total = -1 // Go's transport may have decoded it; trust only what arrives
	}
	return d.reset(total, etag, lastMod, resp.Header.Get("Repr-Digest"))
}

// reset starts the download over with a new generation: the record first
// (so older progress records are ignored), then the partial file, then a
// fresh progress record.
func (d *download) reset(total int64, etag, lastMod, reprDigest string) error {
	d.rec.Generation++
	d.rec.Total, d.rec.ETag, d.rec.LastModified, d.rec.ReprDigest = total, etag, lastMod, reprDigest
	if err := d.save(); err != nil {
		return err
	}
	if err := d.openPartial(); err != nil {
		return err
	}
	if err := d.part.Truncate(0); err != nil {
		return diskError("truncate", d.part.Name(), err)
	}
	if total > 0 {
		if err := d.part.Allocate(total); err != nil && !errors.Is(err, errors.ErrUnsupported) {
			return diskError("reserve space for", d.part.Name(), err)
		}
	}
	end := total
	if total < 0 {
		end = -1
	}
	d.mu.Lock()
	d.prog = progress.Record{Generation: d.rec.Generation, Total: total, Segments: []progress.Segment{{Start: 0, End: end}}}
	if d.rec.Request.Checksum == "" {
		d.sum = httpx.Checksum{}
		if sums := httpx.ParseReprDigest(reprDigest); len(sums) > 0 {
			d.sum = sums[0]
		}
	}
	d.hash = nil
	if d.sum.Algorithm != "" {
		d.hash = d.sum.New()
	}
	snap := d.snapshotLocked()
	d.mu.Unlock()
	d.setWritten()
	if err := d.pf.WriteDurable(snap); err != nil {
		return diskError("write progress", d.s.progressPath(d.rec.ID), err)
	}
	return nil
}

// save writes the working record and shares it with the Task.
func (d *download) save() error {
	if err := d.s.saveRecord(&d.rec); err != nil {
		return err
	}
	d.t.mu.Lock()
	d.t.rec = d.rec
	d.t.mu.Unlock()
	return nil
}

// copy writes body to the partial file from off, recording progress after
// every write, while a checkpointer makes it durable beside the transfer.
func (d *download) copy(ctx context.Context, body io.Reader, off int64) error {
	cp := startCheckpointer(d)
	err := d.copyLoop(ctx, body, off, cp)
	cerr := cp.stop()
	if err == nil {
		err = cerr
	}
	return err
}

func (d *download) copyLoop(ctx context.Context, body io.Reader, off int64, cp *checkpointer) error {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	total := d.prog.Total
	for {
		n, rerr := body.Read(*buf)
		if n > 0 {
			if total >= 0 && off+int64(n) > total {
				return &retryableError{err: errors.New("durl: the server sent more bytes than the file has")}
			}
			if _, err := d.part.WriteAt((*buf)[:n], off); err != nil {
				return diskError("write", d.part.Name(), err)
			}
			d.mu.Lock()
			d.prog.Segments[0].Written += int64(n)
			if d.hash != nil {
				d.hash.Write((*buf)[:n])
			}
			snap := d.snapshotLocked()
			d.mu.Unlock()
			if err := d.pf.WriteVolatile(snap); err != nil {
				return diskError("write progress", d.s.progressPath(d.rec.ID), err)
			}
			off += int64(n)
			d.t.noteProgress(off, time.Now(), &d.mark)
			cp.wrote(off)
			if err := d.wait(ctx, n); err != nil {
				return err
			}
		}
		if err := cp.failed(); err != nil {
			return err
		}
		if rerr == io.EOF {
			if total >= 0 && off < total {
				return &retryableError{err: fmt.Errorf("durl: the connection ended after %d of %d bytes", off, total)}
			}
			if total < 0 {
				return d.learnTotal(off)
			}
			return nil
		}
		if rerr != nil {
			return classifyNetError(rerr, ctx)
		}
	}
}

// learnTotal records the size of a file whose size was unknown until its
// end.
func (d *download) learnTotal(n int64) error {
	d.mu.Lock()
	d.prog.Total = n
	d.prog.Segments[0].End = n
	d.mu.Unlock()
	d.rec.Total = n
	return d.save()
}

// wait applies the rate limits.
func (d *download) wait(ctx context.Context, n int) error {
	for _, l := range []*rate.Limiter{d.limiter, d.s.limiter} {
		if l != nil {
			if err := l.WaitN(ctx, n); err != nil {
				return context.Cause(ctx)
			}
		}
	}
	return nil
}

// snapshotLocked copies the progress, with the hash state. d.mu is held.
func (d *download) snapshotLocked() progress.Record {
	r := d.prog.Clone()
	if d.hash != nil {
		if m, ok := d.hash.(encoding.BinaryMarshaler); ok {
			if st, err := m.MarshalBinary(); err == nil {
				r.HashOffset, r.HashState = d.prog.Prefix(), st
			}
		}
	}
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

// finalize verifies the complete file and moves it to its destination (D3):
// verify, sync, mark finishing, rename, sync the folder, mark completed.
func (d *download) finalize() error {
	if d.hash != nil {
		if d.prog.HashOffset != d.prog.Total && d.prog.Prefix() != d.prog.Total {
			return fmt.Errorf("durl: internal error: hashed %d of %d bytes", d.prog.Prefix(), d.prog.Total)
		}
		if got := d.hash.Sum(nil); !bytes.Equal(got, d.sum.Sum) {
			return d.keepAside(got)
		}
	}
	if err := d.part.Sync(); err != nil {
		return diskError("sync", d.part.Name(), err)
	}
	d.rec.State = recFinishing
	if err := d.save(); err != nil {
		return err
	}
	return d.moveIntoPlace()
}

// moveIntoPlace renames the verified partial file to the destination.
func (d *download) moveIntoPlace() error {
	part := partialPath(d.rec.Path)
	if err := d.s.fs.Rename(part, d.rec.Path); err != nil {
		return diskError("rename", part, err)
	}
	if err := d.s.fs.SyncDir(filepath.Dir(d.rec.Path)); err != nil {
		return diskError("sync folder", filepath.Dir(d.rec.Path), err)
	}
	d.rec.State = recCompleted
	d.rec.Error = ""
	if err := d.save(); err != nil {
		return err
	}
	d.s.fs.Remove(d.s.progressPath(d.rec.ID))
	return nil
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
	if err := d.openPartial(); err != nil {
		return false, err
	}
	return false, d.reset(d.rec.Total, d.rec.ETag, d.rec.LastModified, d.rec.ReprDigest)
}

// keepAside moves a file that failed its checksum out of the way.
func (d *download) keepAside(got []byte) error {
	aside := d.rec.Path + mismatchSuffix
	if err := d.s.fs.Rename(partialPath(d.rec.Path), aside); err != nil {
		return diskError("rename", aside, err)
	}
	d.s.fs.Remove(d.s.progressPath(d.rec.ID))
	d.rec.State = recFailed
	d.rec.Error = fmt.Sprintf("checksum mismatch: expected %s, got %s:%x; the file is kept as %s",
		d.sum, d.sum.Algorithm, got, aside)
	d.save()
	return fmt.Errorf("%w: expected %s, got %s:%x; the file is kept as %s", ErrChecksumMismatch,
		d.sum, d.sum.Algorithm, got, aside)
}

// close releases the files of the run.
func (d *download) close() {
	if d.pf != nil {
		d.pf.Close()
	}
	if d.part != nil {
		d.part.Close()
	}
	if d.lock != nil {
		d.lock.Close()
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

func diskError(op, path string, err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return &DiskError{Op: op, Path: path, Err: fmt.Errorf("the disk is full (%w); free space and run again to continue", err)}
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
		tr.ResponseHeaderTimeout = opts.StallTimeout
		c.Transport = tr
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
