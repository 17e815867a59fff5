// Package eventlog is the daemon's durable, bounded event log. It backs the
// event stream (api.PathEvents): every event gets an ID one above the
// previous, is written to a bbolt file, and is then handed to subscribers,
// so a client that reconnects with its Last-Event-ID gets every event it
// missed, or an api.EventGap event when some of them were trimmed.
//
// Append only queues an event in memory; a committer goroutine writes the
// queue in batches, one bbolt transaction per batch. Subscribers see an
// event only once its batch is committed, so no client ever holds an ID
// that a crash could lose. IDs go on after the last committed one when the
// file is opened again, even after a crash.
//
// Memory stays bounded: the queue holds at most 65,536 events, the most
// recent committed events are kept in a fixed ring for subscribers that
// keep up, and a subscriber that fell behind the ring reads pages from the
// file.
package eventlog

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/durl-dev/durl/api"
	bolt "go.etcd.io/bbolt"
)

// ErrClosed is returned by Subscription.Next and Flush once the log or the
// subscription is closed.
var ErrClosed = errors.New("event log closed")

// Defaults of Options, used for its zero fields.
const (
	DefaultMaxEvents      = 100_000               // Options.MaxEvents
	DefaultMaxAge         = 7 * 24 * time.Hour    // Options.MaxAge
	DefaultCommitInterval = 50 * time.Millisecond // Options.CommitInterval
)

const (
	defaultTailSize = 4096    // committed events kept in memory
	pageSize        = 256     // events a subscriber reads from the file at once
	maxBatch        = 10_000  // events written in one transaction
	maxTrim         = 10_000  // events deleted in one transaction
	maxQueue        = 1 << 16 // events waiting for a commit; Append waits beyond
	retryDelay      = time.Second
	openTimeout     = time.Second // wait for the file lock of another process
)

var (
	eventsBucket = []byte("events")
	metaBucket   = []byte("meta")
	lastIDKey    = []byte("last_id")
)

// Options tune a Log. Zero fields take their defaults.
type Options struct {
	MaxEvents      int           // events kept; older ones are trimmed. Default 100_000.
	MaxAge         time.Duration // events older than this are trimmed. Default 7*24h.
	CommitInterval time.Duration // how long Append may wait to batch events into one commit. Default 50ms.
	NoSync         bool          // bbolt NoSync, for tests/scratch

	tailSize int // committed events kept in memory; tests make it small
}

// Log is a durable, bounded, append-only log of api.Event. Its methods are
// safe for concurrent use.
type Log struct {
	db        *bolt.DB
	opts      Options
	trimEvery time.Duration

	kick chan struct{} // wakes the committer; buffered, never blocks
	quit chan struct{} // closed by Close
	done chan struct{} // closed when the committer has returned

	closeOnce sync.Once
	closeErr  error

	mu       sync.Mutex
	assigned uint64      // last ID given by Append
	queue    []api.Event // appended, not committed yet, in ID order
	urgent   bool        // someone waits in Flush: commit without delay
	last     uint64      // newest committed ID
	lo       uint64      // oldest kept ID; last+1 when none is kept
	ring     []api.Event // committed events, event id at ring[id%len(ring)]
	tailLo   uint64      // oldest ID held by ring; ring holds tailLo..last
	notify   chan struct{}
	failing  bool   // the last commit failed
	err      error  // the last commit error
	errSeq   uint64 // counts failed commits
	dropped  uint64 // events Append dropped (closed, or queue full while failing)
	closing  bool   // Close was called: Append drops, the committer drains
	closed   bool   // the committer is done and the file is closing

	diskReads int // pages subscribers read from the file; for tests
}

// Open opens the event log at path, creating the file with mode 0600 if it
// is missing. IDs continue after the last one committed before, also when
// the previous process died without Close. Open waits at most a second for
// another process holding the file.
func Open(path string, opts Options) (*Log, error) {
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = DefaultMaxEvents
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.CommitInterval <= 0 {
		opts.CommitInterval = DefaultCommitInterval
	}
	if opts.tailSize <= 0 {
		opts.tailSize = defaultTailSize
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout, NoSync: opts.NoSync})
	if err != nil {
		return nil, fmt.Errorf("open event log %s: %w", path, err)
	}
	var first, last uint64
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(eventsBucket)
		if err != nil {
			return err
		}
		m, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		if v := m.Get(lastIDKey); len(v) == 8 {
			last = binary.BigEndian.Uint64(v)
		}
		c := b.Cursor()
		if k, _ := c.Last(); len(k) == 8 {
			last = max(last, binary.BigEndian.Uint64(k))
		}
		if k, _ := c.First(); len(k) == 8 {
			first = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("read event log %s: %w", path, err)
	}
	if first == 0 {
		first = last + 1
	}
	l := &Log{
		db:        db,
		opts:      opts,
		trimEvery: min(max(opts.MaxAge/10, time.Second), time.Minute),
		kick:      make(chan struct{}, 1),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
		assigned:  last,
		last:      last,
		lo:        first,
		ring:      make([]api.Event, opts.tailSize),
		tailLo:    last + 1,
		notify:    make(chan struct{}),
	}
	go l.run()
	return l, nil
}

// Append gives e the next ID, and the current time when e.Time is zero
// (times are kept in UTC), and queues it for the next commit. It does not
// wait for the disk, except when 65,536 events are already waiting: then
// it waits for the committer to catch up, or drops e if the last commit
// failed. After Close, Append drops e.
func (l *Log) Append(e api.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.queue) >= maxQueue && !l.closing && !l.failing {
		l.waitCommitLocked()
	}
	if l.closing || len(l.queue) >= maxQueue {
		l.dropped++
		return
	}
	l.assigned++
	e.ID = l.assigned
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC().Round(0)
	if math.IsNaN(e.Rate) || math.IsInf(e.Rate, 0) {
		e.Rate = 0 // JSON cannot hold it
	}
	l.queue = append(l.queue, e)
	if len(l.queue) == 1 || len(l.queue) >= maxBatch {
		l.kickCommitter()
	}
}

// Flush waits until every event appended before it is committed. It
// returns the commit's error if a commit fails meanwhile, and ErrClosed if
// the log closed with those events uncommitted.
func (l *Log) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	target, seq := l.assigned, l.errSeq
	for l.last < target {
		if l.errSeq != seq {
			return fmt.Errorf("flush event log: %w", l.err)
		}
		if l.closed {
			return ErrClosed
		}
		l.waitCommitLocked()
	}
	return nil
}

// waitCommitLocked asks the committer to commit the queue without delay
// and waits until it has committed a batch, failed to, or the log closed.
// l.mu must be held; it is released while waiting.
func (l *Log) waitCommitLocked() {
	l.urgent = true
	l.kickCommitter()
	ch := l.notify
	l.mu.Unlock()
	<-ch
	l.mu.Lock()
}

// LastID returns the newest committed ID, 0 when there was never any.
func (l *Log) LastID() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// FirstID returns the oldest kept ID, 0 when no event is kept.
func (l *Log) FirstID() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lo > l.last {
		return 0
	}
	return l.lo
}

// Close commits what is queued, stops the committer, wakes every waiting
// Next with ErrClosed and closes the file. It returns an error if the
// queued events could not be committed. Later calls return the first
// call's result.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closing = true
		close(l.quit)
		l.mu.Unlock()
		<-l.done

		l.mu.Lock()
		l.closed = true
		var err error
		if l.failing {
			err = fmt.Errorf("close event log, %d events lost: %w", len(l.queue), l.err)
			l.dropped += uint64(len(l.queue))
			l.queue = nil
		}
		l.broadcast()
		l.mu.Unlock()

		if cerr := l.db.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close event log: %w", cerr))
		}
		l.closeErr = err
	})
	return l.closeErr
}

// kickCommitter wakes the committer without blocking.
func (l *Log) kickCommitter() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// broadcast wakes everyone waiting on l.notify. l.mu must be held.
func (l *Log) broadcast() {
	close(l.notify)
	l.notify = make(chan struct{})
}

// urgentLocked tells whether the queue must be committed without waiting
// for more events. l.mu must be held.
func (l *Log) urgentLocked() bool {
	return l.urgent || l.closing || len(l.queue) >= maxBatch
}

// run is the committer: it writes queued events in batches and trims old
// ones, until Close.
func (l *Log) run() {
	defer close(l.done)
	tick := time.NewTicker(l.trimEvery)
	defer tick.Stop()
	trimMore := true // trim once at start: the options may have shrunk
	for {
		l.mu.Lock()
		n, urgent, closing := len(l.queue), l.urgentLocked(), l.closing
		l.mu.Unlock()
		switch {
		case n == 0 && closing:
			return
		case n == 0 && trimMore:
			trimMore = l.trimOnly()
			continue
		case n == 0:
			select {
			case <-l.kick:
			case <-l.quit:
			case <-tick.C:
				trimMore = true
			}
			continue
		}
		if !urgent {
			l.waitBatch()
		}
		more, err := l.commit()
		if err != nil {
			if closing {
				return // Close reports the error; the queue is lost
			}
			l.pause(retryDelay)
			continue
		}
		trimMore = trimMore || more
	}
}

// waitBatch waits CommitInterval for more events to batch, or less when
// the commit becomes urgent.
func (l *Log) waitBatch() {
	timer := time.NewTimer(l.opts.CommitInterval)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			return
		case <-l.quit:
			return
		case <-l.kick:
			l.mu.Lock()
			urgent := l.urgentLocked()
			l.mu.Unlock()
			if urgent {
				return
			}
		}
	}
}

// pause waits d, or less if Close is called.
func (l *Log) pause(d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-l.quit:
	}
}

// commit writes up to maxBatch queued events, and trims, in one
// transaction, then publishes them to subscribers. more tells that trimming
// stopped at its bound with old events left.
func (l *Log) commit() (more bool, err error) {
	l.mu.Lock()
	n := min(len(l.queue), maxBatch)
	batch := l.queue[:n:n] // Append only writes past n, so batch is stable
	if n == len(l.queue) {
		l.urgent = false
	}
	lo := l.lo
	l.mu.Unlock()

	values := make([][]byte, n)
	for i := range batch {
		values[i] = encode(batch[i])
	}
	last := batch[n-1].ID
	err = l.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(eventsBucket)
		for i := range batch {
			if err := b.Put(idKey(batch[i].ID), values[i]); err != nil {
				return err
			}
		}
		if err := tx.Bucket(metaBucket).Put(lastIDKey, idKey(last)); err != nil {
			return err
		}
		var err error
		lo, more, err = l.trim(b, lo, last)
		return err
	})

	l.mu.Lock()
	defer l.mu.Unlock()
	defer l.broadcast()
	if err != nil {
		l.failing = true
		l.err = fmt.Errorf("commit %d events: %w", n, err)
		l.errSeq++
		return false, l.err
	}
	for _, e := range batch {
		l.ring[e.ID%uint64(len(l.ring))] = e
	}
	l.queue = append(l.queue[:0], l.queue[n:]...)
	l.failing = false
	l.last = last
	l.lo = lo
	if last >= uint64(len(l.ring)) {
		l.tailLo = max(l.tailLo, last-uint64(len(l.ring))+1)
	}
	l.tailLo = max(l.tailLo, lo)
	return more, nil
}

// trimOnly runs one trimming transaction, if anything is to be trimmed,
// and tells whether old events are left to trim.
func (l *Log) trimOnly() (more bool) {
	l.mu.Lock()
	lo, last := l.lo, l.last
	l.mu.Unlock()
	var need bool
	err := l.db.View(func(tx *bolt.Tx) error {
		need = l.needsTrim(tx.Bucket(eventsBucket), lo, last, time.Now().Add(-l.opts.MaxAge))
		return nil
	})
	if err != nil || !need {
		return false // tried again after the next commit or tick
	}
	err = l.db.Update(func(tx *bolt.Tx) error {
		var err error
		lo, more, err = l.trim(tx.Bucket(eventsBucket), lo, last)
		return err
	})
	if err != nil {
		return false
	}
	l.mu.Lock()
	l.lo = max(l.lo, lo)
	l.tailLo = max(l.tailLo, l.lo)
	l.mu.Unlock()
	return more
}

// trim deletes, from lo on, the events beyond MaxEvents and those older
// than MaxAge, at most maxTrim of them. It returns the new oldest kept ID
// and whether it stopped at its bound.
func (l *Log) trim(b *bolt.Bucket, lo, last uint64) (newLo uint64, more bool, err error) {
	cutoff := time.Now().Add(-l.opts.MaxAge)
	for n := 0; l.needsTrim(b, lo, last, cutoff); n++ {
		if n == maxTrim {
			return lo, true, nil
		}
		if err := b.Delete(idKey(lo)); err != nil {
			return lo, false, err
		}
		lo++
	}
	return lo, false, nil
}

// needsTrim tells whether event lo, the oldest kept, is to be trimmed: it
// is one too many, older than cutoff, unreadable or missing. Kept IDs have
// no holes, so the count of kept events is last-lo+1.
func (l *Log) needsTrim(b *bolt.Bucket, lo, last uint64, cutoff time.Time) bool {
	if lo > last {
		return false
	}
	if last-lo+1 > uint64(l.opts.MaxEvents) {
		return true
	}
	v := b.Get(idKey(lo))
	return v == nil || eventTime(v).Before(cutoff)
}

// readPage reads up to pageSize stored events with IDs from..last into dst.
func (l *Log) readPage(from, last uint64, dst []api.Event) ([]api.Event, error) {
	l.mu.Lock()
	l.diskReads++
	l.mu.Unlock()
	err := l.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(eventsBucket).Cursor()
		for k, v := c.Seek(idKey(from)); k != nil && len(dst) < pageSize; k, v = c.Next() {
			id := binary.BigEndian.Uint64(k)
			if id > last {
				break
			}
			dst = append(dst, decode(id, v))
		}
		return nil
	})
	if err != nil {
		return dst, fmt.Errorf("read events from %d: %w", from, err)
	}
	return dst, nil
}

// idKey is the key of event id: 8 bytes, big-endian, so keys sort by ID.
func idKey(id uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, id)
	return k
}

// encode turns e into its stored JSON. An event that cannot be encoded is
// stored as a warning under the same ID, so IDs keep no holes.
func encode(e api.Event) []byte {
	v, err := json.Marshal(e)
	if err != nil {
		v, _ = json.Marshal(api.Event{ID: e.ID, Time: e.Time, Kind: api.EventWarning,
			TaskID: e.TaskID, Reason: "event could not be stored: " + err.Error()})
	}
	return v
}

// decode reads a stored event. One that cannot be read comes back as a
// warning, so a subscriber is not stuck on it.
func decode(id uint64, v []byte) api.Event {
	var e api.Event
	if err := json.Unmarshal(v, &e); err != nil {
		return api.Event{ID: id, Time: time.Now().UTC().Round(0), Kind: api.EventWarning,
			Reason: "stored event could not be read: " + err.Error()}
	}
	e.ID = id
	return e
}

// eventTime returns the time of a stored event, the zero time when it
// cannot be read (so it is trimmed).
func eventTime(v []byte) time.Time {
	var e struct {
		Time time.Time `json:"time"`
	}
	if json.Unmarshal(v, &e) != nil {
		return time.Time{}
	}
	return e.Time
}
