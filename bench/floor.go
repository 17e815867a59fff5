package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// floorFlag runs the suite's own binary as scenario 6's floor instead of
// the suite: see durableCopies.
const floorFlag = "durable-copies"

// durableCopies copies every file of the folder src into the folder dst as
// a durable downloader must finish each file, 16 at once: write
// NAME.part, flush it, rename it to NAME, flush the folder. The files that
// wait together share their flushes, as durl's do: one syncfs for their
// data (then each file's write error is read with sync_file_range), one
// fsync of the folder for their renames. It has no network, no state and
// nothing to resume: what durable files cost on this disk at the least.
func durableCopies(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	names := make(chan string)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	var data, folder groupSync
	for range 16 {
		wg.Go(func() {
			for name := range names {
				if err := durableCopy(filepath.Join(src, name), filepath.Join(dst, name), &data, &folder); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	go func() {
		defer close(names)
		for _, e := range entries {
			select {
			case names <- e.Name():
			case err := <-errs:
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func durableCopy(src, dst string, data, folder *groupSync) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst + ".part")
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = data.sync(func() error { return syncFileSystem(filepath.Dir(dst)) })
	}
	if err == nil {
		err = unix.SyncFileRange(int(out.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WAIT_AFTER)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(dst+".part", dst)
	}
	if err == nil {
		err = folder.sync(func() error { return syncFolder(filepath.Dir(dst)) })
	}
	return err
}

// groupSync runs a sync for any number of callers at once: a caller
// returns after a sync that began after its call.
type groupSync struct {
	mu            sync.Mutex
	cond          *sync.Cond
	asked, synced uint64
	busy          bool
	err           error
}

func (g *groupSync) sync(syncFn func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cond == nil {
		g.cond = sync.NewCond(&g.mu)
	}
	g.asked++
	for mine := g.asked; g.synced < mine; {
		if g.busy {
			g.cond.Wait()
			continue
		}
		g.busy = true
		upTo := g.asked
		g.mu.Unlock()
		err := syncFn()
		g.mu.Lock()
		g.busy, g.synced, g.err = false, upTo, err
		g.cond.Broadcast()
	}
	return g.err
}

func syncFileSystem(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", dir, err)
	}
	return nil
}

func syncFolder(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
