package durl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/durl-dev/durl/internal/httpx"
	"github.com/durl-dev/durl/internal/progress"
	"github.com/durl-dev/durl/internal/retry"
)

const (
	// minSegment is the smallest part a connection is given or left with
	// by a steal. It is larger than bufferSize, so a steal never takes
	// bytes a connection is writing at that moment.
	minSegment = 4 << 20
	// autoConnections is what the automatic default uses for a large file
	// on a server that honours ranges with a strong validator.
	autoConnections = 4
	// autoMinSize is the smallest file the automatic default splits.
	autoMinSize = 64 << 20
)

// connections is how many connections a run of rec may use.
func connections(rec taskRecord) int {
	switch n := rec.Request.Connections; {
	case n > 0:
		return min(n, progress.MaxSegments)
	case len(rec.Request.Mirrors) > 0:
		return max(autoConnections, len(rec.Request.Mirrors)+1)
	case rec.Total < 0 || rec.Total >= autoMinSize || rec.Generation == 0:
		return autoConnections // decided for real once the size is known
	}
	return 1
}

// splitMin is the smallest file a run of req splits over several
// connections: autoMinSize for the automatic default, two parts when the
// request asked for connections or mirrors.
func splitMin(req storedRequest) int64 {
	if req.Connections == 0 && len(req.Mirrors) == 0 {
		return autoMinSize
	}
	return 2 * minSegment
}

// transfer runs rounds of connections until the file is complete, starting
// over when the remote changed.
func (d *download) transfer(ctx context.Context) error {
	for {
		if d.complete() {
			if d.unchanged {
				d.t.setNote(keptNote)
				return d.completed()
			}
			if err := d.verify(); err != nil {
				return err
			}
			if err := d.leaveActiveEarly(); err != nil {
				return err
			}
			return d.finalize()
		}
		err := d.round(ctx)
		var rs *restartError
		switch {
		case errors.As(err, &rs):
			if err := d.restart(rs.reason); err != nil {
				return err
			}
		case err != nil:
			return err
		case !d.complete():
			return errors.New("durl: internal error: every connection stopped before the file was complete")
		}
	}
}

// leaveActiveEarly gives the run's place among the active ones to the next
// task before the complete file is flushed and moved into place, which
// needs no network, so that files finishing together share their flushes.
// It does so only when a kill meanwhile costs little (D5). A recorded task
// first records its last bytes. A task without a record leaves only if
// its file is at most recordStep; it first marks its file finished
// (markFinished), which makes a kill cost nothing, and then needs no
// finishing place. Without the mark, as many tasks may finish so as may
// transfer (MaxActive, else 256): each place holds at most one finishing
// download beside the one transferring. The others keep their place.
func (d *download) leaveActiveEarly() error {
	if !d.t.recorded() {
		if d.prog.Total > recordStep {
			return nil
		}
		marked, err := d.markFinished()
		if err != nil {
			return err
		}
		if marked {
			d.leaveActive()
			return nil
		}
	}
	limit := int32(d.s.Limits().MaxActive)
	if limit <= 0 {
		limit = 256
	}
	if d.s.finishing.Add(1) > limit {
		d.s.finishing.Add(-1)
		return nil
	}
	d.leftActive = true // the run gives the finishing place back
	if d.t.recorded() {
		if err := d.recordVolatile(); err != nil {
			return err
		}
	}
	d.leaveActive()
	return nil
}

// complete reports whether every byte is on disk.
func (d *download) complete() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.completeLocked()
}

func (d *download) completeLocked() bool {
	return d.rec.Generation > 0 && d.prog.Total >= 0 && d.prog.Prefix() == d.prog.Total
}

// round runs connections until every segment is done or one of them fails
// for good; the first failure stops the others.
func (d *download) round(ctx context.Context) error {
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		first   error
		started = 1 // the connection this goroutine runs
	)
	work := func() {
		if err := d.worker(rctx); err != nil {
			mu.Lock()
			if first == nil {
				first = err
				cancel(err)
			}
			mu.Unlock()
		}
	}
	start := func(n int) {
		mu.Lock()
		defer mu.Unlock()
		for ; n > 0 && started < d.conns; n-- {
			started++
			wg.Go(work)
		}
	}
	d.spawn = start // the first answer may show the file can be split
	cp := startCheckpointer(d)
	d.cp = cp
	if d.multi() {
		start(d.conns - 1)
	}
	work()
	wg.Wait()
	// A complete file needs no last checkpoint: finalize syncs it next.
	cerr := cp.stop(!d.complete())
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if first != nil {
		return first
	}
	return cerr
}

// worker is one connection: it takes a segment, fetches it with retries,
// and takes another until there is nothing left worth taking.
func (d *download) worker(ctx context.Context) error {
	pol := d.s.opts.Retry
	bo := retry.Backoff{Base: pol.BaseDelay, Max: pol.MaxDelay}
	failures := 0
	lastProgress := time.Now()
	for {
		idx := d.claim()
		if idx < 0 {
			return nil
		}
		before := d.written()
		err := d.attempt(ctx, &idx) // a new plan may move it to another part
		d.release(idx)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
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
		d.mu.Lock()
		answered, fresh := d.answered, d.rec.Generation == 0
		d.mu.Unlock()
		if fresh && failures >= firstContactAttempts && d.nextOrigin(fmt.Sprintf("failed %d times (%v)", failures, re.err)) {
			failures = 0
			bo.Reset()
			continue
		}
		switch {
		case !answered && fresh && failures >= firstContactAttempts,
			pol.MaxAttempts > 0 && failures >= pol.MaxAttempts,
			time.Since(lastProgress) > pol.MaxWait:
			return re.err
		}
		wait := time.Duration(0)
		if !re.now {
			wait = bo.Next(re.retryAfter)
		}
		if !re.warned {
			d.s.emit(d.t, EventRetrying, fmt.Sprintf("attempt %d failed; retrying in %s", failures, wait.Round(time.Millisecond)), re.err)
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return context.Cause(ctx)
		}
	}
}

// claim gives a connection a segment to fetch, stealing half of the
// largest one left when none is free, or returns -1.
func (d *download) claim() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	minSize := int64(minSegment)
	if !d.multi() {
		minSize = 1 << 62 // one connection: never split
	}
	var idx int
	d.prog.Segments, idx = progress.Steal(d.prog.Segments, d.owned, minSize)
	for len(d.owned) < len(d.prog.Segments) {
		d.owned = append(d.owned, false)
	}
	if idx >= 0 {
		d.owned[idx] = true
	}
	return idx
}

func (d *download) release(idx int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.owned[idx] = false
}

// attempt makes one request for segment *part and copies its body. When
// the answer starts a new plan (see adopt), the connection takes the new
// plan's first part and sets *part to it.
func (d *download) attempt(ctx context.Context, part *int) error {
	idx := *part
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(d.s.opts.StallTimeout, func() { cancel(errStalled) })
	defer stall.Stop()

	d.mu.Lock()
	if src := d.pickSourceLocked(idx); src > 0 {
		d.mu.Unlock()
		return d.attemptMirror(actx, stall, idx, src-1)
	}
	seg := d.prog.Segments[idx]
	single := !d.multi()
	target, usingFinal := d.rec.Request.URL, false
	origin := d.origin
	if origin > 0 {
		target = d.rec.Request.Mirrors[origin-1]
	} else if d.rec.FinalURL != "" && !d.useOriginal {
		target, usingFinal = d.rec.FinalURL, true
	}
	fresh := d.rec.Generation == 0
	validator := d.validator()
	placed := d.placed
	if d.rec.Generation != 0 {
		placed = nil // the file in place is being replaced
	}
	d.mu.Unlock()
	pos := seg.Start + seg.Written

	req, err := d.newRequest(actx, target)
	if err != nil {
		return err
	}
	var overlap int64
	ranged := pos > 0 || !single
	// The first request of a download that may use several connections asks
	// for the first part only: the answer tells whether ranges work and the
	// file's size, and the server pushes nothing beyond the part.
	probe := !ranged && d.conns > 1 && d.rec.Generation == 0
	switch {
	case probe:
		req.Header.Set("Range", httpx.FormatRange(0, minSegment-1))
	case !ranged:
	case validator != "":
		last := int64(-1)
		if !single {
			last = seg.End - 1
		}
		req.Header.Set("Range", httpx.FormatRange(pos, last))
		req.Header.Set("If-Range", validator)
	default: // one connection, no safe validator: check an overlap first
		overlap = min(pos, overlapSize)
		req.Header.Set("Range", httpx.FormatRange(pos-overlap, -1))
	}

	if placed != nil {
		req.Header.Set(placed.conditional())
	}

	release, err := d.s.hostSlot(actx, d.t, req.URL.Host)
	if err != nil {
		return context.Cause(actx)
	}
	defer release()
	resp, err := d.s.client.Do(req)
	if err != nil {
		if usingFinal {
			d.mu.Lock()
			d.useOriginal = true
			d.mu.Unlock()
		}
		return classifyNetError(err, actx)
	}
	defer resp.Body.Close()
	body := &stallReader{r: resp.Body, timer: stall, d: d.s.opts.StallTimeout}
	d.mu.Lock()
	d.answered = true
	final := resp.Request.URL.String()
	moved := origin == 0 && final != d.rec.FinalURL && final != d.rec.Request.URL
	if moved {
		d.rec.FinalURL = final
	}
	d.mu.Unlock()
	if moved {
		if err := d.save(); err != nil {
			return err
		}
	}

	switch resp.StatusCode {
	case http.StatusOK:
		reason := ""
		if ranged { // (a probe's 200 only says the server ignores ranges)
			reason = d.why200(resp)
		}
		if !single {
			if reason == "the server does not resume downloads (it ignored the range request)" {
				// Some servers ignore a range now and then: try this part
				// again rather than start over.
				return &retryableError{err: errors.New("durl: the server ignored a range request")}
			}
			return &restartError{reason}
		}
		if err := d.adopt(resp, reason, resp.ContentLength); err != nil {
			return err
		}
		*part = d.keepFirst()
		return d.copySegment(actx, body, *part, 0, -1)

	case http.StatusPartialContent:
		if probe {
			cr, err := httpx.ParseContentRange(resp.Header.Get("Content-Range"))
			if err != nil || cr.First != 0 {
				return &retryableError{err: fmt.Errorf("durl: the server answered the first range with Content-Range %q", resp.Header.Get("Content-Range"))}
			}
			if err := d.adopt(resp, "", cr.Complete); err != nil {
				return err
			}
			*part = d.keepFirst()
			return d.copySegment(actx, body, *part, 0, cr.Last+1)
		}
		if !ranged {
			return &retryableError{err: errors.New("durl: the server sent part of the file when the whole was asked for")}
		}
		cr, err := httpx.ParseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return &retryableError{err: fmt.Errorf("durl: the server's 206 answer has a bad Content-Range: %w", err)}
		}
		if reason := d.changed206(resp, cr); reason != "" {
			return &restartError{reason}
		}
		first := pos - overlap
		if cr.First > first {
			return &restartError{fmt.Sprintf("the server answered from byte %d when byte %d was asked for", cr.First, first)}
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
				return &restartError{"the remote file changed: the bytes already downloaded no longer match (the server gives no validator)"}
			}
		}
		return d.copySegment(actx, body, idx, pos, cr.Last+1)

	case http.StatusNotModified:
		if placed != nil {
			d.keepPlaced()
			return nil
		}

	case http.StatusRequestedRangeNotSatisfiable:
		cr, err := httpx.ParseContentRange(resp.Header.Get("Content-Range"))
		if probe && err == nil && cr.Complete == 0 {
			return d.adopt(resp, "", 0) // an empty file
		}
		etag, _ := httpx.StrongETag(resp.Header.Get("ETag"))
		if err == nil && single && d.prog.Total >= 0 && cr.Complete == d.prog.Total && pos == d.prog.Total &&
			(etag == "" || d.rec.ETag == "" || etag == d.rec.ETag) {
			return nil // every byte is here already
		}
		return &restartError{"the server says the requested range is past the end: the remote file shrank or changed"}
	}

	serr := &StatusError{StatusCode: resp.StatusCode, Status: resp.Status}
	if !serr.Temporary() && !usingFinal && fresh && d.nextOrigin("answered "+resp.Status) {
		return &retryableError{err: serr, now: true, warned: true}
	}
	if !serr.Temporary() && !usingFinal && d.mirrorUsable() {
		d.mu.Lock()
		d.primaryDown = true
		d.mu.Unlock()
		d.s.emit(d.t, EventWarning, fmt.Sprintf("%s answered %s; going on with the mirrors", sourceLabel(origin, target), resp.Status), nil)
		return &retryableError{err: serr, warned: true}
	}
	if usingFinal && resp.StatusCode >= 400 && !serr.Temporary() {
		// A signed or temporary redirect target expired: go back to the
		// URL that was asked for.
		d.mu.Lock()
		d.useOriginal = true
		d.mu.Unlock()
		return &retryableError{err: serr, now: true}
	}
	if serr.Temporary() {
		wait, _ := httpx.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return &retryableError{err: serr, retryAfter: wait}
	}
	return serr
}

// keepFirst gives the connection whose answer made a new plan (adopt) the
// plan's first part, where that answer's body starts, and returns its
// index. If the file can be split, the other connections start once the
// first bytes are on disk, so mirrors can be checked against them.
func (d *download) keepFirst() int {
	d.mu.Lock()
	d.owned[0] = true
	d.spawnLater = d.multi()
	d.mu.Unlock()
	return 0
}

// newRequest makes a GET of target with the task's headers, asking for the
// identity encoding: a compressed answer would count bytes of another
// representation than a ranged one (golang/go#8923).
func (d *download) newRequest(ctx context.Context, target string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fmt.Errorf("durl: bad URL %q: %w", target, err)
	}
	for name, values := range d.rec.Request.Header {
		req.Header[http.CanonicalHeaderKey(name)] = values
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", d.s.opts.UserAgent)
	}
	req.Header.Set("Accept-Encoding", "identity")
	return req, nil
}

// validator is the If-Range value that makes a resume conditional, or ""
// when the remote has no safe validator. d.mu is held.
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

// changed206 says why a 206 answer shows the remote changed, or "". Every
// part must come from the same representation: the same total and the same
// strong ETag.
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

// copySegment writes body to segment idx from pos, recording progress
// every recordStep, until the segment's end (which a steal may move closer)
// or the body's. respEnd is where the answer's range ends, or -1 when it
// runs to the end of the file.
func (d *download) copySegment(ctx context.Context, body io.Reader, idx int, pos, respEnd int64) error {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	var unrecorded int64 // written by this connection since it last recorded
	for {
		n, rerr := body.Read(*buf)
		d.mu.Lock()
		end := d.prog.Segments[idx].End
		d.mu.Unlock()
		if end >= 0 && pos+int64(n) > end {
			n = int(end - pos) // the rest belongs to another segment
		}
		if n > 0 {
			chunk := (*buf)[:n]
			if _, err := d.part.WriteAt(chunk, pos); err != nil {
				return diskError("write", d.part.Name(), err)
			}
			d.mu.Lock()
			d.prog.Segments[idx].Written += int64(n)
			err := d.hashChunkLocked(chunk, pos)
			written, complete := d.prog.Written(), d.completeLocked()
			d.mu.Unlock()
			if err != nil {
				return err
			}
			// Once the file is complete, finalize records it next.
			unrecorded += int64(n)
			if unrecorded >= recordStep && !complete {
				if err := d.recordVolatile(); err != nil {
					return err
				}
				unrecorded = 0
			}
			pos += int64(n)
			if d.spawnLater && written >= overlapSize {
				d.spawnLater = false
				d.spawn(d.conns - 1)
			}
			d.t.noteProgress(written, time.Now(), &d.mark)
			d.cp.wrote(written)
			if err := d.wait(ctx, n); err != nil {
				return err
			}
		}
		if err := d.cp.failed(); err != nil {
			return err
		}
		if end >= 0 && pos >= end {
			return nil
		}
		if rerr == io.EOF {
			if pos == respEnd {
				return nil // all that was asked for; the rest comes next
			}
			if end >= 0 {
				return &retryableError{err: fmt.Errorf("durl: the connection ended at byte %d, before byte %d", pos, end)}
			}
			return d.learnTotal(idx, pos)
		}
		if rerr != nil {
			return classifyNetError(rerr, ctx)
		}
	}
}

// recordVolatile writes the progress record's volatile slot: what every
// connection has written so far (D5). The task's record goes first.
func (d *download) recordVolatile() error {
	if d.unnamed {
		return nil // a kill loses its file, at most recordStep (openUnnamed)
	}
	pf, snap, err := d.progressToWrite()
	if err != nil {
		return err
	}
	if err := pf.WriteVolatile(snap); err != nil {
		return diskError("write progress", d.s.taskPath(d.rec.ID), err)
	}
	return nil
}

// learnTotal records the size of a file whose size was unknown until its
// end.
func (d *download) learnTotal(idx int, n int64) error {
	d.mu.Lock()
	d.prog.Total = n
	d.prog.Segments[idx].End = n
	d.rec.Total = n
	d.mu.Unlock()
	return d.save()
}
