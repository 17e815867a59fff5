package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

// genFile writes size deterministic pseudo-random bytes (ChaCha8 seeded
// with seed, streamed in 1 MiB blocks) to path through a temp name and a
// rename, sets its mtime, and returns the SHA-256.
func genFile(path string, seed uint64, size int64, mtime time.Time) (string, error) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	copy(key[8:], "durl-bench-data")
	rng := rand.NewChaCha8(key)
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".gen")
	f, err := os.Create(tmp)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	buf := make([]byte, miB)
	for rem := size; rem > 0; {
		n := int(min(int64(len(buf)), rem))
		rng.Read(buf[:n])
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			os.Remove(tmp)
			return "", err
		}
		rem -= int64(n)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Chtimes(tmp, mtime, mtime); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// served is a generated file in the served folder.
type served struct {
	name string // path under the served root, e.g. "s1.bin"
	path string
	size int64
	sha  string
}

// serve generates (once per name) a file under the served root.
func (b *bench) serve(name string, seed uint64, size int64) (served, error) {
	p := filepath.Join(b.root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return served{}, err
	}
	sha, err := genFile(p, b.cfg.seed*1_000_003+seed, size, time.Now().Add(-time.Hour))
	return served{name: name, path: p, size: size, sha: sha}, err
}

func (b *bench) url(location, name string) string {
	return b.srv.URL + "/" + location + "/" + name
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// checkFile reports "" if path has the expected SHA-256, else what is wrong.
func checkFile(path, sha string, size int64) string {
	got, n, err := hashFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no file"
	case err != nil:
		return err.Error()
	case got == sha:
		return ""
	case n != size:
		return fmt.Sprintf("wrong: %s instead of %s", sizeStr(n), sizeStr(size))
	default:
		return "wrong: same size, other bytes"
	}
}

func sizeStr(n int64) string {
	switch {
	case n >= giB && n%giB == 0:
		return fmt.Sprintf("%d GiB", n/giB)
	case n >= miB:
		return fmt.Sprintf("%.1f MiB", float64(n)/miB)
	case n >= kiB:
		return fmt.Sprintf("%.1f KiB", float64(n)/kiB)
	default:
		return fmt.Sprintf("%d B", n)
	}
}

// compareVersions says what a downloaded file is, given the old and the
// new version of the remote file: "new", "old", "mix (...)", "partial old"
// (a prefix of the old one), "partial new", "neither", or "no file".
func compareVersions(path, oldPath, newPath string) string {
	f, err := os.Open(path)
	if err != nil {
		return "no file"
	}
	defer f.Close()
	o, err := os.Open(oldPath)
	if err != nil {
		return "error: " + err.Error()
	}
	defer o.Close()
	n, err := os.Open(newPath)
	if err != nil {
		return "error: " + err.Error()
	}
	defer n.Close()
	fst, _ := f.Stat()
	ost, _ := o.Stat()
	nst, _ := n.Stat()
	const blk = 64 * kiB
	fb, ob, nb := make([]byte, blk), make([]byte, blk), make([]byte, blk)
	var oldOnly, newOnly, both, neither int64 // bytes
	var firstNew int64 = -1
	for off := int64(0); off < fst.Size(); off += blk {
		k, _ := io.ReadFull(f, fb)
		ko, _ := io.ReadFull(o, ob)
		kn, _ := io.ReadFull(n, nb)
		isOld := ko >= k && bytes.Equal(fb[:k], ob[:k])
		isNew := kn >= k && bytes.Equal(fb[:k], nb[:k])
		switch {
		case isOld && isNew:
			both += int64(k)
		case isOld:
			oldOnly += int64(k)
		case isNew:
			newOnly += int64(k)
			if firstNew < 0 {
				firstNew = off
			}
		default:
			// The block where an old prefix meets a new suffix.
			a := commonPrefix(fb[:k], ob[:min(k, ko)])
			z := commonSuffix(fb[:k], nb[:min(k, kn)])
			if kn >= k && a+z >= k && z > 0 {
				oldOnly += int64(k - z)
				newOnly += int64(z)
				if firstNew < 0 {
					firstNew = off + int64(k-z)
				}
			} else {
				neither += int64(k)
			}
		}
	}
	size := fst.Size()
	switch {
	case neither > 0:
		return fmt.Sprintf("neither (%s, %s matches no version)", sizeStr(size), sizeStr(neither))
	case newOnly == 0 && size == ost.Size():
		return "old"
	case oldOnly == 0 && size == nst.Size():
		return "new"
	case newOnly == 0:
		return fmt.Sprintf("partial old (%s of %s)", sizeStr(size), sizeStr(ost.Size()))
	case oldOnly == 0:
		return fmt.Sprintf("partial new (%s of %s)", sizeStr(size), sizeStr(nst.Size()))
	default:
		return fmt.Sprintf("mix (old bytes, new ones from %s on; %s)", sizeStr(firstNew), sizeStr(size))
	}
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func commonSuffix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[len(a)-1-n] == b[len(b)-1-n] {
		n++
	}
	return n
}
