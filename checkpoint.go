package durl

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/durl-dev/durl/internal/progress"
	"github.com/durl-dev/durl/internal/vfs"
)

// checkpointer makes progress durable beside the transfer (D4): it syncs
// the data, then writes a durable progress record counting only what the
// sync covered (D1). The copy loop never waits for it; it only kicks it.
//
// Its goroutine starts when there is something to do: after the first
// checkpoint interval, or at the first kick. A round shorter than that
// (a small file) costs no goroutine.
type checkpointer struct {
	d            *download
	kick         chan struct{}
	quit         chan struct{}
	done         chan struct{}
	began        time.Time   // the round's start
	startWritten int64       // bytes written then
	timer        *time.Timer // starts the goroutine after an interval
	once         sync.Once   // starts it, or (in stop) makes sure it never will
	started      bool        // set inside once

	mu  sync.Mutex
	err error

	kickedAt atomic.Int64 // written bytes at the last kick
}

func startCheckpointer(d *download) *checkpointer {
	cp := &checkpointer{d: d, kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		began: time.Now(), startWritten: d.written()}
	cp.kickedAt.Store(cp.startWritten)
	cp.timer = time.AfterFunc(d.s.opts.CheckpointInterval, cp.start)
	return cp
}

// start runs the loop, unless it runs already or stop came first.
func (cp *checkpointer) start() {
	cp.once.Do(func() {
		cp.started = true
		go cp.loop()
	})
}

// wrote tells the checkpointer how many bytes are written now. Any
// connection may call it.
func (cp *checkpointer) wrote(written int64) {
	if last := cp.kickedAt.Load(); written-last >= writebackStep && cp.kickedAt.CompareAndSwap(last, written) {
		cp.start()
		select {
		case cp.kick <- struct{}{}:
		default:
		}
	}
}

// failed returns the checkpointer's error, if it had one.
func (cp *checkpointer) failed() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.err
}

// stop ends the checkpointer and, if last is set, makes a last checkpoint.
func (cp *checkpointer) stop(last bool) error {
	cp.timer.Stop()
	cp.once.Do(func() {}) // no start after this
	if cp.started {
		close(cp.quit)
		<-cp.done
	}
	if err := cp.failed(); err != nil || !last {
		return err
	}
	return cp.d.checkpoint()
}

// loop checkpoints every CheckpointInterval or CheckpointBytes, whichever
// comes first since the last one (or the round's start), and starts the
// write-back of what was written since it last did.
func (cp *checkpointer) loop() {
	defer close(cp.done)
	opts := cp.d.s.opts
	ticker := time.NewTicker(opts.CheckpointInterval)
	defer ticker.Stop()
	var writtenBack int64
	flushed := map[int]int64{} // per segment: the end of what was handed to write-back
	durable, last := cp.startWritten, cp.began
	for {
		now := cp.d.written()
		if part, _ := cp.d.dataFile(); now-writtenBack >= writebackStep && part != nil {
			cp.startWriteback(part, flushed)
			writtenBack = now
		}
		if time.Since(last) >= opts.CheckpointInterval || now-durable >= opts.CheckpointBytes {
			if err := cp.d.checkpoint(); err != nil {
				cp.mu.Lock()
				cp.err = err
				cp.mu.Unlock()
				return
			}
			durable, last = now, time.Now()
		}
		select {
		case <-cp.quit:
			return
		case <-ticker.C:
		case <-cp.kick:
		}
	}
}

// startWriteback asks the OS to start writing back what each segment wrote
// since the last call, so the syncs of checkpoints stay short.
func (cp *checkpointer) startWriteback(part vfs.File, flushed map[int]int64) {
	d := cp.d
	d.mu.Lock()
	segs := append([]progress.Segment(nil), d.prog.Segments...)
	d.mu.Unlock()
	for i, s := range segs {
		from := max(flushed[i], s.Start)
		if to := s.Start + s.Written; to > from {
			part.StartWriteback(from, to-from)
			flushed[i] = to
		}
	}
}

// checkpoint syncs the data and then records, durably, what the sync
// covered.
func (d *download) checkpoint() error {
	part, unnamed := d.dataFile()
	if part == nil || unnamed {
		return nil // nothing written yet, or nothing a record may count on (openUnnamed)
	}
	// The task's record goes first; the sync of the progress record
	// carries it.
	pf, snap, err := d.progressToWrite()
	if err != nil {
		return err
	}
	if err := part.Sync(); err != nil {
		return diskError("sync", part.Name(), err)
	}
	if err := d.syncPartialName(); err != nil {
		return err
	}
	if err := pf.WriteDurable(snap); err != nil {
		return diskError("write progress", d.s.taskPath(d.rec.ID), err)
	}
	return nil
}
