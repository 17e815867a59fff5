package durltest_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"

	"github.com/durl-dev/durl/durltest"
)

// A server that cuts the first response after 1000 bytes; the client resumes
// with Range and If-Range and checks the assembled body.
func Example() {
	s := durltest.NewServer(durltest.WithContent(42, 5000), durltest.WithCutAfter(1000, 1))
	defer s.Close()

	resp, err := s.Client().Get(s.FileURL())
	if err != nil {
		panic(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, len(got), err != nil)

	req, _ := http.NewRequest(http.MethodGet, s.FileURL(), nil)
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-", len(got)))
	req.Header.Set("If-Range", resp.Header.Get("ETag"))
	resp, err = s.Client().Do(req)
	if err != nil {
		panic(err)
	}
	rest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Range"))

	fmt.Println(durltest.Verify(bytes.NewReader(append(got, rest...)), 42, 5000))
	fmt.Println(s.BytesSent(), "body bytes sent in", len(s.Requests()), "requests")
	// Output:
	// 200 1000 true
	// 206 bytes 1000-4999/5000
	// <nil>
	// 5000 body bytes sent in 2 requests
}
