package durl

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/durl-dev/durl/internal/httpx"
	"github.com/durl-dev/durl/internal/progress"
	"github.com/durl-dev/durl/internal/vfs"
)

// finishedAttr names the attribute (vfs.File.SetAttr) that a download
// without a record puts on its partial file once every byte is written
// and verified: the file's own record that it is complete. With it the
// download leaves its place to the next one while its file waits for a
// flush shared with many others, and a kill meanwhile costs nothing (D5),
// though no task file describes it: the rerun finds the mark before it
// asks the server anything, and only finishes the file. The mark is
// removed once the file is in place.
const finishedAttr = "durl"

// A finished mark is a version byte, a digest, then the file's size and
// strong validators, each ended by a zero byte. The digest covers them, the
// URL and the boot id: the mark vouches for data that may not be flushed
// yet, so it is trusted only in the boot that wrote it, like the volatile
// progress slot (D5), and only for the same URL. Most marks fit inside an
// ext4 inode, where setting one writes no block of its own.
type finishedMark struct {
	total         int64
	etag, lastMod string
}

const (
	finishedVersion = 1
	finishedDigest  = 16
)

func (m finishedMark) digest(boot [16]byte, rawURL string) []byte {
	h := sha256.New()
	h.Write(boot[:])
	for _, s := range []string{rawURL, strconv.FormatInt(m.total, 10), m.etag, m.lastMod} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return h.Sum(nil)[:finishedDigest]
}

func (m finishedMark) encode(boot [16]byte, rawURL string) []byte {
	b := append([]byte{finishedVersion}, m.digest(boot, rawURL)...)
	for _, s := range []string{strconv.FormatInt(m.total, 10), m.etag, m.lastMod} {
		b = append(append(b, s...), 0)
	}
	return b
}

// decodeFinishedMark parses b, and reports false unless it is a mark of
// this version written in boot for rawURL.
func decodeFinishedMark(b []byte, boot [16]byte, rawURL string) (finishedMark, bool) {
	if len(b) < 1+finishedDigest || b[0] != finishedVersion {
		return finishedMark{}, false
	}
	fields := bytes.Split(b[1+finishedDigest:], []byte{0})
	if len(fields) != 4 || len(fields[3]) != 0 {
		return finishedMark{}, false
	}
	total, err := strconv.ParseInt(string(fields[0]), 10, 64)
	if err != nil || total < 0 {
		return finishedMark{}, false
	}
	m := finishedMark{total: total, etag: string(fields[1]), lastMod: string(fields[2])}
	if m.etag == "" && m.lastMod == "" || !bytes.Equal(b[1:1+finishedDigest], m.digest(boot, rawURL)) {
		return finishedMark{}, false
	}
	return m, true
}

// finishedPath is where a rerun looks for a finished file of req before it
// asks the server anything: the destination, or in a destination folder
// the name the URL gives, which the server's answer keeps unless it names
// the file itself (Content-Disposition, or a redirect). "" if none.
func finishedPath(req storedRequest) string {
	if !req.DestIsDir {
		return req.Dest
	}
	u, err := url.Parse(req.URL)
	if err != nil {
		return ""
	}
	return filepath.Join(req.Dest, httpx.DownloadName("", u))
}

// markFinished puts the finished mark on the complete, verified partial
// file. It reports false, and writes nothing, where a rerun could not
// use the mark: the remote gave no strong validator, the file is not
// where a rerun looks (finishedPath), syncing is off (finishing then
// takes no time) or the file system keeps no attributes.
func (d *download) markFinished() (bool, error) {
	d.mu.Lock()
	m := finishedMark{total: d.rec.Total, etag: d.rec.ETag, lastMod: d.rec.LastModified}
	path := d.rec.Path
	d.mu.Unlock()
	if m.etag == "" && m.lastMod == "" || d.s.opts.NoSync || path != finishedPath(d.rec.Request) {
		return false, nil
	}
	err := d.part.SetAttr(finishedAttr, m.encode(d.s.bootID, d.rec.Request.URL))
	if errors.Is(err, errors.ErrUnsupported) {
		return false, nil
	}
	if err != nil {
		return false, diskError("mark", d.part.Name(), err)
	}
	d.marked = true
	return true, nil
}

// loadFinished looks, for a download that has learnt nothing of the remote
// yet, for a complete file that a killed run marked finished where a
// rerun looks. It reports whether it found one and took the download as
// complete: then only finishing remains.
func (d *download) loadFinished() (bool, error) {
	path := finishedPath(d.rec.Request)
	if d.rec.Generation != 0 || path == "" {
		return false, nil
	}
	part := partialPath(path)
	f, err := d.s.fs.OpenFile(part, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false, nil // none: the download starts as usual
	}
	if err := f.Lock(); err != nil {
		f.Close()
		return false, lockError(err, part)
	}
	m, ok := d.finishedMarkOf(f)
	if !ok {
		f.Close() // the download starts over in it (openPartial)
		return false, nil
	}
	d.part, d.marked = f, true
	d.takeFinished(path, m)
	return true, nil
}

// finishedMarkOf returns the finished mark of the partial file f, if it
// has one that this run may trust and f has the size it gives.
func (d *download) finishedMarkOf(f vfs.File) (finishedMark, bool) {
	b, err := f.Attr(finishedAttr)
	if err != nil {
		return finishedMark{}, false
	}
	m, ok := decodeFinishedMark(b, d.s.bootID, d.rec.Request.URL)
	if !ok {
		return finishedMark{}, false
	}
	info, err := f.Stat()
	return m, err == nil && info.Size() == m.total
}

// takeFinished makes the run's state that of a download of the file m
// describes, complete, at path. Its generation is new and unwritten, as
// after reset.
func (d *download) takeFinished(path string, m finishedMark) {
	d.mu.Lock()
	d.rec.Path = path
	d.rec.Generation++
	d.rec.Total, d.rec.ETag, d.rec.LastModified = m.total, m.etag, m.lastMod
	d.deferred = true
	d.prog = progress.Record{Generation: d.rec.Generation, Total: m.total,
		Segments: []progress.Segment{{Start: 0, End: m.total, Written: m.total}}}
	d.owned = make([]bool, 1)
	rec := d.recordLocked()
	d.mu.Unlock()
	d.t.setRecord(rec)
}

// unmarkFinished removes the finished mark once the file is in place, so
// the user's file does not carry it. Not before the rename: a kill in
// between would cost the file. A failure, or a crash before the removal
// is durable, leaves only a stray attribute that durl never reads (it
// looks at partial files only), not worth failing the download for.
func (d *download) unmarkFinished() {
	if d.marked {
		d.part.SetAttr(finishedAttr, nil)
		d.marked = false
	}
}
