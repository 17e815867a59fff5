package durl

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// BenchmarkManySmallFiles downloads 64 KiB files from a loopback server
// into one folder, 16 at a time, as `durl get -j 16 -d DIR` does: the
// per-file cost of the engine.
// bench/run scenario 6 measures the same against curl, wget and aria2c.
//
//	go test -run '^$' -bench ManySmallFiles -benchtime 2000x .
func BenchmarkManySmallFiles(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		b.Run(fmt.Sprintf("nosync=%t", noSync), func(b *testing.B) {
			body := bytes.Repeat([]byte("durl"), 16<<10)
			modified := time.Now()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("ETag", `"small"`)
				http.ServeContent(w, r, "f", modified, bytes.NewReader(body))
			}))
			defer srv.Close()
			dir := b.TempDir()
			s, err := Open(context.Background(), Options{StateDir: filepath.Join(dir, "state"), MaxActive: 16, NoSync: noSync, LazyRecords: true})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.ResetTimer()
			var wg sync.WaitGroup
			starting := make(chan struct{}, 16)
			for i := 0; i < b.N; i++ {
				starting <- struct{}{}
				wg.Go(func() {
					t, err := s.Start(Request{URL: srv.URL + fmt.Sprintf("/f%d", i), Dest: filepath.Join(dir, "out"), DestIsDir: true})
					<-starting
					if err != nil {
						b.Error(err)
						return
					}
					if err := t.Wait(context.Background()); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
		})
	}
}
