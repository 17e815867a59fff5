package durl

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"syscall"

	"github.com/durl-dev/durl/internal/httpx"
	"github.com/durl-dev/durl/internal/progress"
	"github.com/durl-dev/durl/internal/vfs"
)

// finishedAttr names the attribute (vfs.File.SetAttr) in which durl marks
// a file complete: a mark that a rerun checks before it asks the server
// anything. It comes in two versions.
//
// A finished mark goes on the partial file of a download without a
// record once every byte is written and verified: the file's own record
// that it is complete. With it the download leaves its place to the next
// one while its file waits for a flush shared with many others, and a
// kill meanwhile costs nothing (D5), though no task file describes it:
// the rerun only finishes the file. It vouches for data that may not be
// flushed yet, so it is trusted only in the boot that wrote it, like the
// volatile progress slot.
//
// A placed mark replaces it once the file's data is flushed, just before
// the file is renamed into place (and goes on the files of recorded
// downloads too): a rerun of the same download, say of a list that was
// killed part way, then asks the server for the file only if it changed
// (If-None-Match, else If-Modified-Since), and keeps the file on 304 Not
// Modified; a rerun that finds it on the partial file (killed before the
// rename) only finishes the file. It vouches for flushed data, so it holds
// across reboots, except under NoSync, where it too is trusted only in the
// boot that wrote it.
const finishedAttr = "durl"

// A mark is its version, a digest, then the file's size and modification
// time (8 bytes each, big-endian) and its strong validators, each ended by
// a zero byte. The digest covers the version, the boot id (zero for a
// mark trusted across reboots), the URL and the rest. A file is taken for
// what its mark says only with the mark's size and modification time:
// written to since, it is downloaded again. Most marks fit inside an ext4
// inode, where setting one writes no block of its own.
type finishedMark struct {
	total, mtime  int64
	etag, lastMod string
}

const (
	finishedVersion = 1 // on a complete partial file
	placedVersion   = 2 // on a file in place
	markDigest      = 16
	markNumbers     = 16 // the size and the modification time
)

// digestOf is the digest of a mark whose bytes after the digest are rest.
func digestOf(version byte, boot [16]byte, rawURL string, rest []byte) []byte {
	h := sha256.New()
	h.Write([]byte{version})
	h.Write(boot[:])
	h.Write([]byte(rawURL))
	h.Write([]byte{0})
	h.Write(rest)
	return h.Sum(nil)[:markDigest]
}

func (m finishedMark) encode(version byte, boot [16]byte, rawURL string) []byte {
	rest := binary.BigEndian.AppendUint64(nil, uint64(m.total))
	rest = binary.BigEndian.AppendUint64(rest, uint64(m.mtime))
	rest = append(append(rest, m.etag...), 0)
	rest = append(append(rest, m.lastMod...), 0)
	return append(append([]byte{version}, digestOf(version, boot, rawURL, rest)...), rest...)
}

// decodeMark parses b, and reports false unless it is a mark of version
// written in boot for rawURL.
func decodeMark(b []byte, version byte, boot [16]byte, rawURL string) (finishedMark, bool) {
	if len(b) < 1+markDigest+markNumbers || b[0] != version {
		return finishedMark{}, false
	}
	rest := b[1+markDigest:]
	fields := bytes.Split(rest[markNumbers:], []byte{0})
	if len(fields) != 3 || len(fields[2]) != 0 {
		return finishedMark{}, false
	}
	m := finishedMark{
		total:   int64(binary.BigEndian.Uint64(rest)),
		mtime:   int64(binary.BigEndian.Uint64(rest[8:])),
		etag:    string(fields[0]),
		lastMod: string(fields[1]),
	}
	if m.total < 0 || m.etag == "" && m.lastMod == "" ||
		!bytes.Equal(b[1:1+markDigest], digestOf(version, boot, rawURL, rest)) {
		return finishedMark{}, false
	}
	return m, true
}

// describes reports whether f is the file m describes: of its size, and
// not written to since it was marked.
func (m finishedMark) describes(f vfs.File) bool {
	info, err := f.Stat()
	return err == nil && info.Size() == m.total && info.ModTime().UnixNano() == m.mtime
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
	if d.s.opts.NoSync {
		return false, nil
	}
	m, ok := d.markOf()
	if !ok {
		return false, nil
	}
	err := d.part.SetAttr(finishedAttr, m.encode(finishedVersion, d.s.bootID, d.rec.Request.URL))
	if errors.Is(err, errors.ErrUnsupported) {
		return false, nil
	}
	if err != nil {
		return false, diskError("mark", d.part.Name(), err)
	}
	return true, nil
}

// markOf returns the mark that describes the complete partial file, false
// where a rerun could not use one: the remote gave no strong validator,
// or the file is not where a rerun looks (finishedPath).
func (d *download) markOf() (finishedMark, bool) {
	d.mu.Lock()
	m := finishedMark{total: d.rec.Total, etag: d.rec.ETag, lastMod: d.rec.LastModified}
	path := d.rec.Path
	d.mu.Unlock()
	if m.etag == "" && m.lastMod == "" || path != d.rerunPath {
		return finishedMark{}, false
	}
	info, err := d.part.Stat()
	if err != nil {
		return finishedMark{}, false
	}
	m.mtime = info.ModTime().UnixNano()
	return m, true
}

// loadFinished looks, for a download that has learnt nothing of the remote
// yet, for a complete file that a killed run marked finished where a
// rerun looks. It reports whether it found one and took the download as
// complete: then only finishing remains.
func (d *download) loadFinished() (bool, error) {
	path := d.rerunPath
	if d.rec.Generation != 0 || path == "" || !d.s.mayExist(partialPath(path)) {
		return false, nil
	}
	part := partialPath(path)
	f, err := d.s.fs.OpenFile(part, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false, nil // none: the download starts as usual
	}
	if err := f.Lock(); err != nil {
		f.Close()
		return false, d.s.lockError(d.t, err, path)
	}
	if err := d.s.holdDest(d.t, path); err != nil {
		f.Close()
		return false, err
	}
	m, ok := d.finishedMarkOf(f)
	if !ok {
		f.Close() // the download starts over in it (openPartial)
		return false, nil
	}
	d.setDataFile(f, false)
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
	m, ok := decodeMark(b, finishedVersion, d.s.bootID, d.rec.Request.URL)
	if !ok {
		m, ok = d.decodePlaced(b)
	}
	return m, ok && m.describes(f)
}

// decodePlaced parses b, and reports false unless it is a placed mark for
// the download's URL that this run may trust.
func (d *download) decodePlaced(b []byte) (finishedMark, bool) {
	m, ok := decodeMark(b, placedVersion, [16]byte{}, d.rec.Request.URL)
	if !ok {
		m, ok = decodeMark(b, placedVersion, d.s.bootID, d.rec.Request.URL)
	}
	return m, ok
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

// markPlaced replaces the finished mark of the complete partial file, its
// data flushed, with a placed mark, or puts one on it, where a rerun can
// use it. It fails silently: without the mark, a rerun only downloads the
// file again. (A finished mark left on a file in place is never read:
// durl reads those on partial files only.)
func (d *download) markPlaced() {
	if d.part == nil {
		return // finishInterrupted renames a file it did not open
	}
	m, ok := d.markOf()
	if !ok {
		return
	}
	var boot [16]byte // zero: trusted in any boot
	if d.s.opts.NoSync {
		boot = d.s.bootID
	}
	d.part.SetAttr(finishedAttr, m.encode(placedVersion, boot, d.rec.Request.URL))
}

// loadPlaced looks, for a download that has learnt nothing of the remote
// yet, for the file an earlier run put in place and marked (markPlaced).
// If this run may trust it, and it matches the checksum the request gives,
// the first request asks for the file only if it changed.
func (d *download) loadPlaced() {
	path := d.rerunPath
	if d.rec.Generation != 0 || path == "" || !d.s.mayExist(path) {
		return
	}
	// O_NONBLOCK: a FIFO at the destination must not block the open.
	f, err := d.s.fs.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	defer f.Close()
	b, err := f.Attr(finishedAttr)
	if err != nil {
		return
	}
	m, ok := d.decodePlaced(b)
	if !ok || !m.describes(f) {
		return
	}
	if d.sum.Algorithm != "" {
		h := d.sum.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, m.total)); err != nil || !bytes.Equal(h.Sum(nil), d.sum.Sum) {
			return
		}
	}
	d.placed = &m
}

// conditional returns the header that asks for the file only if it changed
// since the marked file in place was downloaded, and its value.
func (m finishedMark) conditional() (name, value string) {
	if m.etag != "" {
		return "If-None-Match", m.etag
	}
	return "If-Modified-Since", m.lastMod
}

// keepPlaced takes the download as complete with the file in place, which
// the server said is unchanged (304 Not Modified).
func (d *download) keepPlaced() {
	d.takeFinished(d.rerunPath, *d.placed)
	d.mu.Lock()
	d.unchanged = true
	d.mu.Unlock()
}
