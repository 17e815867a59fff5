package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durl-dev/durl"
	"github.com/durl-dev/durl/durltest"
	"github.com/durl-dev/durl/internal/vfs"
	"github.com/durl-dev/durl/internal/vfs/errfs"
)

// parseGet runs "durl get args..." up to flag parsing and returns the
// options and arguments get would run with.
func parseGet(t *testing.T, args ...string) (*getOptions, []string, int) {
	t.Helper()
	e, _, _ := testEnv("", t.TempDir(), nil)
	var (
		got     *getOptions
		gotArgs []string
	)
	a := &app{env: e, getHook: func(o *getOptions, args []string) error {
		got, gotArgs = o, args
		return nil
	}}
	code := a.run(context.Background(), append([]string{"get"}, args...))
	return got, gotArgs, code
}

func TestGetFlags(t *testing.T) {
	o, args, code := parseGet(t, "-o", "f.bin", "-j", "3", "-H", "A: 1", "-H", "B: 2", "--checksum", "sha256:00",
		"--limit-rate", "10M", "--retries", "2", "--cacert", "ca.pem", "--proxy", "http://p:1", "--no-sync",
		"-q", "--json", "-i", "list.txt", "-d", "out", "https://h/x")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	want := &getOptions{output: "f.bin", dir: "out", inputFile: "list.txt", jobs: 3, headers: []string{"A: 1", "B: 2"},
		checksum: "sha256:00", limitRate: "10M", retries: 2, cacert: "ca.pem", proxy: "http://p:1",
		noSync: true, quiet: true, json: true}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("options\n got %+v\nwant %+v", o, want)
	}
	if !reflect.DeepEqual(args, []string{"https://h/x"}) {
		t.Errorf("args %q", args)
	}
}

func TestGetDefaults(t *testing.T) {
	o, _, code := parseGet(t, "https://h/x")
	if code != 0 || o.jobs != defaultJobs || o.retries != defaultRetries || o.quiet || o.json || o.noSync {
		t.Errorf("exit %d, defaults %+v", code, o)
	}
}

func TestDestination(t *testing.T) {
	cwd := t.TempDir()
	existing := filepath.Join(cwd, "existing")
	if err := os.Mkdir(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		output, dir string
		dest        string
		isDir       bool
		bad         bool
	}{
		{"", "", cwd, true, false},
		{"", "sub", filepath.Join(cwd, "sub"), true, false},
		{"", "/abs/dir/", "/abs/dir", true, false},
		{"f.bin", "", filepath.Join(cwd, "f.bin"), false, false},
		{"a/../f.bin", "", filepath.Join(cwd, "f.bin"), false, false},
		{"/abs/f.bin", "", "/abs/f.bin", false, false},
		{"f.bin", "sub", filepath.Join(cwd, "sub", "f.bin"), false, false},
		{"/abs/f.bin", "sub", "/abs/f.bin", false, false},
		{"existing", "", "", false, true},
		{"newdir/", "", "", false, true},
		{"-", "", "", false, true},
		{"./-", "", filepath.Join(cwd, "-"), false, false},
	}
	for _, tt := range tests {
		o := &getOptions{output: tt.output, dir: tt.dir}
		dest, isDir, err := o.destination(cwd)
		if tt.bad {
			if err == nil {
				t.Errorf("-o %q -d %q: no error", tt.output, tt.dir)
			}
			continue
		}
		if err != nil || dest != tt.dest || isDir != tt.isDir {
			t.Errorf("-o %q -d %q: got %q %v %v; want %q %v", tt.output, tt.dir, dest, isDir, err, tt.dest, tt.isDir)
		}
	}
}

func TestParseURLList(t *testing.T) {
	in := "\ufeffhttps://h/a\r\n\n  # a comment\n   https://h/b  \n#https://h/skipped\nhttp://h/c\n"
	got, err := parseURLList(strings.NewReader(in), "list.txt")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://h/a", "https://h/b", "http://h/c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	_, err = parseURLList(strings.NewReader("https://h/a\nnot a url\n"), "-")
	if err == nil || !strings.Contains(err.Error(), "stdin, line 2") || exitCode(err) != exitUsage {
		t.Errorf("bad line: %v", err)
	}
}

func TestRequests(t *testing.T) {
	cwd := t.TempDir()
	list := filepath.Join(cwd, "list.txt")
	if err := os.WriteFile(list, []byte("https://h/b\n# c\nhttps://h/a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := &getOptions{inputFile: list, jobs: 1, headers: []string{"X-Token: abc", "accept: text/plain"}}
	reqs, err := o.requests([]string{"https://h/a", "https://h/c"}, nil, cwd)
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, r := range reqs {
		urls = append(urls, r.URL)
		if r.Dest != cwd || !r.DestIsDir || r.Header.Get("X-Token") != "abc" || r.Header.Get("Accept") != "text/plain" {
			t.Errorf("request %+v", r)
		}
	}
	if want := []string{"https://h/a", "https://h/c", "https://h/b"}; !reflect.DeepEqual(urls, want) {
		t.Errorf("urls %q, want %q (arguments first, then the list, duplicates dropped)", urls, want)
	}

	o = &getOptions{inputFile: "-", jobs: 1, output: "x.bin", checksum: "SHA256:" + strings.Repeat("AB", 32)}
	reqs, err = o.requests(nil, strings.NewReader("https://h/only\n"), cwd)
	if err != nil {
		t.Fatal(err)
	}
	want := durl.Request{URL: "https://h/only", Dest: filepath.Join(cwd, "x.bin"), Checksum: "sha256:" + strings.Repeat("ab", 32)}
	if len(reqs) != 1 || !reflect.DeepEqual(reqs[0], want) {
		t.Errorf("got %+v, want %+v", reqs, want)
	}
}

func TestParseHeaders(t *testing.T) {
	h, err := parseHeaders([]string{"Authorization: Bearer x:y", "X-A:1", "X-A: 2", "Empty:"})
	if err != nil {
		t.Fatal(err)
	}
	want := http.Header{"Authorization": {"Bearer x:y"}, "X-A": {"1", "2"}, "Empty": {""}}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("got %v", h)
	}
	for _, bad := range []string{"NoColon", ": v", "Bad Name: v", "X\x00: v"} {
		if _, err := parseHeaders([]string{bad}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseChecksum(t *testing.T) {
	for in, want := range map[string]string{
		"":                                   "",
		"md5:" + strings.Repeat("A", 32):     "md5:" + strings.Repeat("a", 32),
		"sha1:" + strings.Repeat("0", 40):    "sha1:" + strings.Repeat("0", 40),
		"sha512:" + strings.Repeat("f", 128): "sha512:" + strings.Repeat("f", 128),
	} {
		if got, err := parseChecksum(in); err != nil || got != want {
			t.Errorf("parseChecksum(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"sha256", "sha256:" + strings.Repeat("g", 64), "sha3:00", strings.Repeat("0", 64)} {
		if _, err := parseChecksum(bad); err == nil {
			t.Errorf("parseChecksum(%q): no error", bad)
		}
	}
}

func TestSessionOptions(t *testing.T) {
	o := &getOptions{jobs: 3, retries: 5, limitRate: "2M", noSync: true}
	opts, err := o.sessionOptions("/state")
	if err != nil {
		t.Fatal(err)
	}
	if opts.StateDir != "/state" || opts.Recovery != durl.ReportInterrupted || opts.MaxActive != 3 ||
		opts.Retry.MaxAttempts != 5 || opts.RateLimit != 2<<20 || !opts.NoSync || opts.Client != nil {
		t.Errorf("options %+v", opts)
	}
}

func TestHTTPClientProxyAndCACert(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, selfSignedPEM(t), 0o644); err != nil {
		t.Fatal(err)
	}
	o := &getOptions{cacert: ca, proxy: "http://proxy.invalid:3128"}
	c, err := o.httpClient()
	if err != nil {
		t.Fatal(err)
	}
	tr := c.Transport.(*http.Transport)
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.RootCAs == nil {
		t.Fatal("no RootCAs")
	}
	if tr == http.DefaultTransport {
		t.Fatal("DefaultTransport modified")
	}
	req, _ := http.NewRequest("GET", "https://h/x", nil)
	if u, err := tr.Proxy(req); err != nil || u == nil || u.Host != "proxy.invalid:3128" {
		t.Errorf("proxy %v, %v", u, err)
	}

	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o644)
	if _, err := (&getOptions{cacert: notPEM}).httpClient(); err == nil || exitCode(err) != exitUsage {
		t.Errorf("non-PEM cacert: %v", err)
	}
	if c, err := (&getOptions{}).httpClient(); c != nil || err != nil {
		t.Errorf("no flags: %v, %v; want the library's default client", c, err)
	}
}

// selfSignedPEM returns a fresh self-signed CA certificate in PEM.
func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "durl test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestOutputMode(t *testing.T) {
	tests := []struct {
		o        getOptions
		terminal bool
		want     outputMode
	}{
		{getOptions{}, false, outputLines},
		{getOptions{}, true, outputBars},
		{getOptions{quiet: true}, true, outputQuiet},
		{getOptions{json: true}, true, outputJSON},
		{getOptions{json: true, quiet: true}, false, outputJSON},
	}
	for _, tt := range tests {
		if got := tt.o.outputMode(tt.terminal); got != tt.want {
			t.Errorf("%+v terminal=%v: %v, want %v", tt.o, tt.terminal, got, tt.want)
		}
	}
}

// durl get -d makes the folders it creates durable, as the library does:
// the parent of each new folder is synced, so that a power loss does not
// take the folder with the files finished in it. --no-sync syncs nothing.
func TestGetMakesNewFoldersDurable(t *testing.T) {
	srv := durltest.NewServer(durltest.WithContent(1, 1000))
	defer srv.Close()
	for _, noSync := range []bool{false, true} {
		t.Run(fmt.Sprintf("no-sync=%t", noSync), func(t *testing.T) {
			root := t.TempDir()
			e, _, stderr := testEnv("", root, map[string]string{"DURL_STATE": t.TempDir()})
			var mu sync.Mutex
			var synced []string
			e.fs = errfs.Wrap(vfs.OS, func(op errfs.Op, path string) error {
				if op == errfs.OpSyncDir {
					mu.Lock()
					synced = append(synced, path)
					mu.Unlock()
				}
				return nil
			})
			args := []string{"get", "-q", "-d", filepath.Join("new", "sub"), srv.FileURL()}
			if noSync {
				args = append(args, "--no-sync")
			}
			if code := run(context.Background(), args, e); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if err := durltest.VerifyFile(filepath.Join(root, "new", "sub", path.Base(srv.FileURL())), 1, 1000); err != nil {
				t.Fatal(err)
			}
			slices.Sort(synced)
			want := []string{root, filepath.Join(root, "new")}
			if noSync {
				want = nil
			}
			if !slices.Equal(synced, want) {
				t.Errorf("folders synced: %q, want %q", synced, want)
			}
		})
	}
}
