package progress

import (
	"flag"
	"os"
	"reflect"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// goldenRecord is the record stored in testdata/record-v1.bin. Every
// format version keeps its golden file, so old state keeps opening.
var goldenRecord = Record{Seq: 7, Generation: 2, BootID: [16]byte{1, 2, 3}, Durable: true, Total: 1000,
	Segments:   []Segment{{Start: 0, End: 600, Written: 300}, {Start: 600, End: 1000, Written: 50}},
	HashOffset: 300, HashState: []byte("hash-state")}

func TestGoldenV1(t *testing.T) {
	const path = "testdata/record-v1.bin"
	if *update {
		b, err := goldenRecord.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(path, b, 0o644)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil || !reflect.DeepEqual(got, goldenRecord) {
		t.Fatalf("Unmarshal(golden) = %+v, %v", got, err)
	}
	if got.Prefix() != 300 || got.Written() != 350 {
		t.Errorf("Prefix %d Written %d", got.Prefix(), got.Written())
	}
}

func TestTornSlotsAreIgnored(t *testing.T) {
	b, _ := goldenRecord.Marshal()
	for i := range b {
		torn := append([]byte(nil), b...)
		torn[i] ^= 0x40
		if _, err := Unmarshal(torn); err == nil {
			t.Fatalf("a record with byte %d flipped was accepted", i)
		}
	}
	for n := 0; n < len(b); n++ {
		if _, err := Unmarshal(b[:n]); err == nil {
			t.Fatalf("a record cut to %d bytes was accepted", n)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	b, _ := goldenRecord.Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Unmarshal(data)
		if err != nil {
			return
		}
		again, err := r.Marshal()
		if err != nil {
			t.Fatalf("accepted record does not marshal: %v", err)
		}
		if _, err := Unmarshal(again); err != nil {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}
