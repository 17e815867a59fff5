package durl

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/durl-dev/durl/internal/httpx"
)

// mirrorFailureLimit is how many failures in a row make a mirror wait
// while other sources work.
const mirrorFailureLimit = 3

// pickSourceLocked chooses where segment idx is fetched from: 0 for the
// URL, m+1 for mirror m, in turn. A mirror is used only when the download
// is split; one not yet verified only once durl holds a sample to compare
// it with; one verified but without a validator only where durl holds the
// bytes just before the segment's position, to compare again. d.mu is held.
func (d *download) pickSourceLocked(idx int) int {
	if len(d.rec.Mirrors) == 0 || !d.multi() || d.rec.Generation == 0 {
		return 0
	}
	seg := d.prog.Segments[idx]
	pos := seg.Start + seg.Written
	n := 1 + len(d.rec.Mirrors)
	for range n {
		d.nextSource = (d.nextSource + 1) % n
		src := d.nextSource
		if src == 0 {
			if d.primaryDown {
				continue
			}
			return 0
		}
		st := d.rec.Mirrors[src-1]
		if st.Dropped != "" || d.failures[src] >= mirrorFailureLimit {
			continue
		}
		verified := st.Verified && (st.ETag != "" || st.LastModified != "")
		if !verified && !(st.Verified && pos > 0 && d.writtenLocked(pos-min(pos, overlapSize), pos)) &&
			!(!st.Verified && d.hasSampleLocked()) {
			continue
		}
		return src
	}
	return 0
}

// sourceLabel names source origin (see taskRecord.Origin), at url, in a
// warning: the task's own URL goes without saying.
func sourceLabel(origin int, url string) string {
	if origin == 0 {
		return "the URL"
	}
	return "mirror " + url
}

// nextOrigin turns the plain path, which asks for the whole file, to the
// next mirror not dropped, when the source it asked failed (what says how)
// before the download learnt anything of the remote: a dead URL does not
// fail a download its mirrors can serve. It warns, and reports false when
// no mirror is left or the download is under way.
func (d *download) nextOrigin(what string) bool {
	d.mu.Lock()
	if d.rec.Generation != 0 {
		d.mu.Unlock()
		return false
	}
	from := d.rec.Request.URL
	if d.origin > 0 {
		from = d.rec.Request.Mirrors[d.origin-1]
	}
	why := sourceLabel(d.origin, from) + " " + what
	next := d.origin + 1
	for next <= len(d.rec.Mirrors) && d.rec.Mirrors[next-1].Dropped != "" {
		next++
	}
	if next > len(d.rec.Mirrors) {
		d.mu.Unlock()
		return false
	}
	if d.origin > 0 {
		d.rec.Mirrors[d.origin-1].Dropped = why
	}
	d.origin = next
	to := d.rec.Request.Mirrors[next-1]
	d.mu.Unlock()
	d.s.emit(d.t, EventWarning, fmt.Sprintf("%s; trying mirror %s", why, to), nil)
	return true
}

// sampleLocked returns where bytes on disk can be compared with a mirror,
// and how many (up to overlapSize); n is 0 when there are none yet. d.mu
// is held.
func (d *download) sampleLocked() (at, n int64) {
	for _, s := range d.prog.Segments {
		if s.Written > 0 && (s.Written >= overlapSize || s.Done()) {
			return s.Start, min(s.Written, overlapSize)
		}
	}
	return 0, 0
}

func (d *download) hasSampleLocked() bool { _, n := d.sampleLocked(); return n > 0 }

// writtenLocked reports whether bytes [from, to) are on disk. d.mu is held.
func (d *download) writtenLocked(from, to int64) bool {
	for _, s := range d.prog.Segments {
		if s.Start <= from && to <= s.Start+s.Written {
			return true
		}
	}
	return false
}

// mirrorUsable reports whether some mirror is verified and not dropped.
func (d *download) mirrorUsable() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, st := range d.rec.Mirrors {
		if st.Verified && st.Dropped == "" {
			return true
		}
	}
	return false
}

// attemptMirror fetches segment idx from mirror m. A mirror is first
// verified against a sample of bytes on disk; one without a validator is
// checked again on every request, from up to 16 KiB before the position.
func (d *download) attemptMirror(ctx context.Context, stall *time.Timer, idx, m int) error {
	d.mu.Lock()
	verified := d.rec.Mirrors[m].Verified
	d.mu.Unlock()
	if !verified {
		if err := d.verifyMirror(ctx, stall, m); err != nil {
			return err
		}
	}
	d.mu.Lock()
	seg := d.prog.Segments[idx]
	st := d.rec.Mirrors[m]
	target := d.rec.Request.Mirrors[m]
	d.mu.Unlock()
	pos := seg.Start + seg.Written
	validator := st.ETag
	if validator == "" {
		validator = st.LastModified
	}
	var overlap int64
	if validator == "" {
		overlap = min(pos, overlapSize)
		d.mu.Lock()
		held := d.writtenLocked(pos-overlap, pos)
		d.mu.Unlock()
		if overlap == 0 || !held {
			return &retryableError{err: errors.New("durl: no bytes to check the mirror against here"), now: true}
		}
	}
	return d.fetchFromMirror(ctx, stall, m, target, idx, pos-overlap, seg.End-1, overlap, validator)
}

// verifyMirror checks mirror m against a sample of bytes on disk, its size
// and its digest, and records its validator.
func (d *download) verifyMirror(ctx context.Context, stall *time.Timer, m int) error {
	d.mu.Lock()
	at, n := d.sampleLocked()
	target := d.rec.Request.Mirrors[m]
	d.mu.Unlock()
	if n == 0 {
		return &retryableError{err: errors.New("durl: nothing on disk yet to check the mirror against"), now: true}
	}
	return d.fetchFromMirror(ctx, stall, m, target, -1, at, at+n-1, n, "")
}

// fetchFromMirror asks mirror m for bytes [first, last]. The first overlap
// bytes are compared with the file on disk; the rest, if any, go to
// segment idx (-1: a verification only).
func (d *download) fetchFromMirror(ctx context.Context, stall *time.Timer, m int, target string, idx int, first, last, overlap int64, validator string) error {
	d.mu.Lock()
	st := d.rec.Mirrors[m]
	total := d.prog.Total
	d.mu.Unlock()
	req, err := d.newRequest(ctx, target)
	if err != nil {
		return d.dropMirror(m, err.Error())
	}
	req.Header.Set("Range", httpx.FormatRange(first, last))
	if validator != "" {
		req.Header.Set("If-Range", validator)
	}
	release, err := d.s.hostSlot(ctx, d.t, req.URL.Host)
	if err != nil {
		return context.Cause(ctx)
	}
	defer release()
	resp, err := d.s.client.Do(req)
	if err != nil {
		return d.mirrorFailed(m, classifyNetError(err, ctx))
	}
	defer resp.Body.Close()
	body := &stallReader{r: resp.Body, timer: stall, d: d.s.opts.StallTimeout}

	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		if st.Verified {
			return d.dropMirror(m, "it changed or stopped honouring ranges")
		}
		return d.dropMirror(m, "it does not honour range requests")
	default:
		serr := &StatusError{StatusCode: resp.StatusCode, Status: resp.Status}
		if serr.Temporary() {
			wait, _ := httpx.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
			return d.mirrorFailed(m, &retryableError{err: serr, retryAfter: wait})
		}
		return d.dropMirror(m, "it answered "+resp.Status)
	}
	cr, err := httpx.ParseContentRange(resp.Header.Get("Content-Range"))
	switch {
	case err != nil:
		return d.dropMirror(m, "its Content-Range is malformed")
	case cr.Complete != total:
		return d.dropMirror(m, fmt.Sprintf("its file has %d bytes, not %d", cr.Complete, total))
	case cr.First != first:
		return d.dropMirror(m, fmt.Sprintf("it answered from byte %d when byte %d was asked for", cr.First, first))
	}
	if theirs, ours := httpx.ParseReprDigest(resp.Header.Get("Repr-Digest")), httpx.ParseReprDigest(d.rec.ReprDigest); len(theirs) > 0 && len(ours) > 0 &&
		theirs[0].String() != ours[0].String() && theirs[0].Algorithm == ours[0].Algorithm {
		return d.dropMirror(m, "its Repr-Digest differs from the file's")
	}
	etag, _ := httpx.StrongETag(resp.Header.Get("ETag"))
	if st.Verified && st.ETag != "" && etag != "" && etag != st.ETag {
		return d.dropMirror(m, "its file changed (its ETag is different)")
	}
	if overlap > 0 {
		same, err := d.overlapMatches(body, first, overlap)
		if err != nil {
			return d.mirrorFailed(m, classifyNetError(err, ctx))
		}
		if !same {
			return d.dropMirror(m, "its bytes differ from the file's")
		}
	}
	if !st.Verified {
		lastMod := ""
		if etag == "" {
			if _, ok := httpx.StrongLastModified(resp.Header.Get("Last-Modified"), resp.Header.Get("Date")); ok {
				lastMod = resp.Header.Get("Last-Modified")
			}
		}
		d.mu.Lock()
		d.rec.Mirrors[m] = mirrorState{Verified: true, ETag: etag, LastModified: lastMod}
		d.mu.Unlock()
		if err := d.save(); err != nil {
			return err
		}
	}
	if idx < 0 {
		return nil
	}
	err = d.copySegment(ctx, body, idx, first+overlap, cr.Last+1)
	if err == nil {
		d.mu.Lock()
		delete(d.failures, m+1)
		d.mu.Unlock()
		return nil
	}
	return d.mirrorFailed(m, err)
}

// mirrorFailed counts a failure of mirror m and passes err on.
func (d *download) mirrorFailed(m int, err error) error {
	var re *retryableError
	if errors.As(err, &re) {
		d.mu.Lock()
		if d.failures == nil {
			d.failures = map[int]int{}
		}
		d.failures[m+1]++
		d.mu.Unlock()
		re.now = true // another source may serve it at once
	}
	return err
}

// dropMirror stops using mirror m for this download and says why.
func (d *download) dropMirror(m int, reason string) error {
	d.mu.Lock()
	already := d.rec.Mirrors[m].Dropped != "" // another connection got there first
	if !already {
		d.rec.Mirrors[m].Dropped = reason
	}
	url := d.rec.Request.Mirrors[m]
	d.mu.Unlock()
	err := &retryableError{err: fmt.Errorf("durl: mirror %s dropped: %s", url, reason), now: true, warned: true}
	if already {
		return err
	}
	if err := d.save(); err != nil {
		return err
	}
	d.s.emit(d.t, EventWarning, fmt.Sprintf("mirror %s dropped: %s", url, reason), nil)
	return err
}
