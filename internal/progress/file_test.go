package progress

import (
	"os"
	"testing"

	"github.com/durl-dev/durl/internal/vfs/memfs"
)

// A checkpoint's record is taken before its sync and written after it.
// The volatile records written meanwhile count more: in the same boot Load
// must trust them, not the checkpoint that was written last; after a
// reboot, the checkpoint. A volatile record taken earlier but written later
// than another does not replace it.
func TestLoadTrustsTheRecordTakenLast(t *testing.T) {
	f, err := memfs.New().OpenFile("/task", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	boot, reboot := [16]byte{1}, [16]byte{2}
	pf := New(f, 0, boot)
	rec := func(written int64) Record {
		r := Record{Generation: 1, Total: 1000, Segments: []Segment{{Start: 0, End: 1000, Written: written}}}
		pf.Stamp(&r)
		return r
	}
	load := func(boot [16]byte) int64 {
		t.Helper()
		r, err := New(f, 0, boot).Load(1)
		if err != nil {
			t.Fatal(err)
		}
		return r.Written()
	}

	checkpoint := rec(100)
	if err := pf.WriteVolatile(rec(300)); err != nil {
		t.Fatal(err)
	}
	if err := pf.WriteDurable(checkpoint); err != nil {
		t.Fatal(err)
	}
	if got := load(boot); got != 300 {
		t.Errorf("same boot: Load counts %d bytes, want 300 (the volatile record taken after the checkpoint's)", got)
	}
	if got := load(reboot); got != 100 {
		t.Errorf("after a reboot: Load counts %d bytes, want 100 (the checkpoint)", got)
	}

	earlier, later := rec(400), rec(500)
	pf.WriteVolatile(later)
	pf.WriteVolatile(earlier)
	if got := load(boot); got != 500 {
		t.Errorf("Load counts %d bytes, want 500: a record taken earlier replaced one taken later", got)
	}
}
