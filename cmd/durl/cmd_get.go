package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/durl-dev/durl"
	"github.com/durl-dev/durl/api"
	"github.com/durl-dev/durl/internal/httpx"
	"github.com/durl-dev/durl/internal/vfs"
	"github.com/spf13/cobra"
)

// finishWorkers is how many downloads durl get keeps started for each one
// -j lets transfer: the others finish their files meanwhile. Beyond 8,
// more did not make 2,000 files of 64 KiB faster.
const finishWorkers = 8

// defaultJobs is the default of -j. Four downloads at once keep one slow
// server from holding up a whole list, without hammering a server the way
// dozens of connections would; a single URL is unaffected.
const defaultJobs = 4

// defaultRetries is the default of --retries: 0, no count, so a download
// keeps retrying (waits grow from 1 s to 60 s) for up to 2 hours without
// progress: a laptop can sleep for an hour, or lose its network, and the
// download still finishes when it wakes. A download that never got any
// answer (a wrong host name) still fails after 3 attempts.
const defaultRetries = 0

// getOptions are the flags of durl get.
type getOptions struct {
	output    string   // -o
	dir       string   // -d
	inputFile string   // -i
	jobs      int      // -j
	conns     int      // -x
	mirrors   []string // --mirror
	headers   []string // -H
	checksum  string   // --checksum
	limitRate string   // --limit-rate
	retries   int      // --retries
	cacert    string   // --cacert
	proxy     string   // --proxy
	noSync    bool     // --no-sync
	quiet     bool     // -q
	json      bool     // --json
}

// getCmd builds durl get.
func (a *app) getCmd() *cobra.Command {
	o := &getOptions{}
	cmd := &cobra.Command{
		Use:   "get [flags] URL [URL...]",
		Short: "Download files; run the same command again to continue after any interruption",
		Long: "Download each URL. If the download is interrupted (Ctrl-C, kill -9, power loss,\n" +
			"network failure), run the same command again: it continues where it stopped,\n" +
			"and starts over only if the remote file changed. A file it already put in place\n" +
			"is kept if the server says it is unchanged (one small request).\n\n" +
			"Without -o, each file is saved in the current folder (or -d DIR) under the name\n" +
			"the server gives (Content-Disposition), else the last part of the URL.\n" +
			"With several URLs, the exit code is that of the first one that failed, in the\n" +
			"order given.",
		Example: "  durl get https://example.com/big.iso\n" +
			"  durl get -o disk.img https://example.com/download?id=7\n" +
			"  durl get -d ~/Downloads -j 2 -i urls.txt\n" +
			"  durl get --checksum sha256:9f86d08... https://example.com/file.tar.gz\n" +
			"  durl get -x 8 --mirror https://mirror.example.org/big.iso https://example.com/big.iso",
		RunE: func(cmd *cobra.Command, args []string) error {
			a.ran = true
			if a.getHook != nil {
				return a.getHook(o, args)
			}
			return a.runGet(cmd.Context(), o, args)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVarP(&o.output, "output", "o", "", "save to `FILE` (one URL only)")
	f.StringVarP(&o.dir, "dir", "d", "", "save in folder `DIR`, created if needed (default: the current folder)")
	f.StringVarP(&o.inputFile, "input-file", "i", "", "read URLs from `FILE`, one per line; '#' starts a comment; '-' reads stdin")
	f.IntVarP(&o.jobs, "jobs", "j", defaultJobs, "download `N` files at once")
	f.StringArrayVar(&o.mirrors, "mirror", nil, "another `URL` of the same file; parts are fetched from all of them, from the mirrors alone if the URL is dead (repeatable; one URL only)")
	f.IntVarP(&o.conns, "connections", "x", 0, "use up to `N` connections per file (0: automatic, several for large files on servers that allow it)")
	f.StringArrayVarP(&o.headers, "header", "H", nil, "send the header `'Name: value'` (repeatable)")
	f.StringVar(&o.checksum, "checksum", "", "verify the file against `ALGO:HEX` (sha256, sha512, sha1 or md5; one URL only)")
	f.StringVar(&o.limitRate, "limit-rate", "", "limit the total speed to `RATE` bytes per second, such as 10M (K, M, G: powers of 1024)")
	f.IntVar(&o.retries, "retries", defaultRetries, "give up after `N` failed attempts in a row (0: keep trying for 2 hours without progress)")
	f.StringVar(&o.cacert, "cacert", "", "also trust the CA certificates in PEM `FILE`")
	f.StringVar(&o.proxy, "proxy", "", "use the proxy `URL` (default: $HTTPS_PROXY, $HTTP_PROXY, $NO_PROXY)")
	f.BoolVar(&o.noSync, "no-sync", false, "never fsync: faster, but a power loss may corrupt the download (scratch data only)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print nothing but errors")
	f.BoolVar(&o.json, "json", false, "print the events of these downloads as JSON lines on stdout")
	return cmd
}

// runGet runs durl get.
func (a *app) runGet(ctx context.Context, o *getOptions, args []string) error {
	cwd, err := a.env.getwd()
	if err != nil {
		return fmt.Errorf("cannot find the current folder: %w", err)
	}
	reqs, err := o.requests(args, a.env.stdin, cwd)
	if err != nil {
		return err
	}
	stateDir, err := a.resolveStateDir()
	if err != nil {
		return err
	}
	opts, err := o.sessionOptions(stateDir)
	if err != nil {
		return err
	}
	if !o.noSync {
		ensureSyncProcs(a.env.getenv)
	}
	if o.dir != "" {
		dir := reqs[0].Dest
		if !reqs[0].DestIsDir {
			dir = filepath.Dir(dir)
		}
		// Durable like the folders the library creates: a power loss must
		// not take a new folder with the files finished in it.
		fsys := a.env.fs
		if o.noSync {
			fsys = vfs.NoSync(fsys)
		}
		if err := vfs.MkdirAllDurable(fsys, dir, 0o755); err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return &durl.DiskError{Op: "create folder", Path: dir, Err: err}
		}
	}
	r := newRenderer(o.outputMode(a.env.terminal), a.env.stdout, a.env.stderr)
	if o.outputMode(a.env.terminal) != outputQuiet {
		opts.OnEvent = r.event // quiet prints only errors, from the results
	}
	return download(ctx, opts, reqs, r)
}

// download runs reqs in one session, printing each failure as it happens.
// It returns nil when every download completed; errInterrupted when ctx
// was cancelled (by Ctrl-C or SIGTERM) before they all ended, after pausing
// them; else an *exitStatus with the code of the first download, in input
// order, that failed; or the error of opening or closing the session.
func download(ctx context.Context, opts durl.Options, reqs []durl.Request, r renderer) error {
	s, err := durl.Open(ctx, opts)
	if err != nil {
		r.finish()
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}
	// Workers, each starting the next download and waiting for it: only
	// the downloads under way have a task, so a long list costs nothing
	// until its turn (a rerun of the command starts the rest, and keeps
	// the files in place that the server says are unchanged). There are
	// finishWorkers times as many as -j: the session transfers -j at once,
	// and a small download that is flushing its file leaves its place to
	// the next (see Options.MaxActive), so that files finishing together
	// share their flushes. Such a download first marks its file finished,
	// so a kill costs it nothing (D5); where the file system cannot keep
	// the mark, one finishing download a place is allowed, which costs a
	// kill at most 64 KiB each beside what each transfer had.
	release := func() {}
	if dir, ok := commonFolder(reqs); ok && len(reqs) >= scanMin {
		if r, err := s.ScanFolder(dir); err == nil {
			release = r
		} // else each download looks for itself
	}
	results := make([]error, len(reqs))
	ran := make([]bool, len(reqs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range finishWorkers * max(opts.MaxActive, 1) {
		wg.Go(func() {
			for i := range next {
				ran[i] = true
				results[i] = fetch(ctx, s, reqs[i])
				if err := results[i]; err != nil && !(ctx.Err() != nil && errors.Is(err, durl.ErrPaused)) {
					r.errorLine(describe(err))
				}
			}
		})
	}
feed:
	for i := range reqs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	release()
	closeErr := s.Close() // delivers the last events
	r.finish()
	if ctx.Err() != nil && unfinished(ran, results) {
		return errInterrupted
	}
	for _, err := range results {
		if err != nil {
			return &exitStatus{code: exitCode(err)}
		}
	}
	if closeErr != nil && !errors.Is(closeErr, durl.ErrSessionClosed) {
		return closeErr
	}
	return nil
}

// scanMin is how many downloads into one folder make durl get list the
// folder once (Session.ScanFolder), rather than let each download look
// for what an earlier run left there.
const scanMin = 64

// commonFolder returns the folder that every request downloads into, by
// the name the server gives, if there is one.
func commonFolder(reqs []durl.Request) (string, bool) {
	for _, req := range reqs {
		if !req.DestIsDir || req.Dest != reqs[0].Dest {
			return "", false
		}
	}
	return reqs[0].Dest, len(reqs) > 0
}

// fetch runs one download to its end. When ctx is cancelled first, it
// pauses the download, which makes its progress durable.
func fetch(ctx context.Context, s *durl.Session, req durl.Request) error {
	t, err := s.Start(req)
	if err != nil {
		return &downloadError{URL: req.URL, Err: err}
	}
	select {
	case <-t.Done():
	case <-ctx.Done():
		t.Pause() // refused if it has just ended: that is fine
	}
	return t.Wait(context.Background())
}

// unfinished reports whether a request was never started or was paused.
func unfinished(ran []bool, results []error) bool {
	for i, err := range results {
		if !ran[i] || errors.Is(err, durl.ErrPaused) {
			return true
		}
	}
	return false
}

// outputMode chooses how progress is shown.
func (o *getOptions) outputMode(terminal bool) outputMode {
	switch {
	case o.json:
		return outputJSON
	case o.quiet:
		return outputQuiet
	case terminal:
		return outputBars
	}
	return outputLines
}

// requests checks the flags and arguments and returns the downloads to run,
// with absolute destinations so that running the same command again from
// the same folder continues them. Errors are *usageError.
func (o *getOptions) requests(args []string, stdin io.Reader, cwd string) ([]durl.Request, error) {
	urls := append([]string(nil), args...)
	if o.inputFile != "" {
		listed, err := readURLList(o.inputFile, stdin)
		if err != nil {
			return nil, err
		}
		if len(urls)+len(listed) == 0 {
			name := o.inputFile
			if name == "-" {
				name = "stdin"
			}
			return nil, usageErrorf("%s holds no URL (blank lines and lines starting with # are skipped)", name)
		}
		urls = append(urls, listed...)
	}
	urls = dedupe(urls)
	if err := checkTargets(urls, o.output, o.checksum, o.mirrors, o.conns); err != nil {
		return nil, err
	}
	switch {
	case o.jobs < 1:
		return nil, usageErrorf("-j must be at least 1")
	case o.retries < 0:
		return nil, usageErrorf("--retries must be 0 or more")
	}
	header, err := parseHeaders(o.headers)
	if err != nil {
		return nil, err
	}
	checksum, err := parseChecksum(o.checksum)
	if err != nil {
		return nil, err
	}
	dest, isDir, err := o.destination(cwd)
	if err != nil {
		return nil, err
	}
	reqs := make([]durl.Request, len(urls))
	for i, u := range urls {
		reqs[i] = durl.Request{URL: u, Dest: dest, DestIsDir: isDir, Header: header.Clone(), Checksum: checksum, Connections: o.conns,
			Mirrors: o.mirrors}
	}
	return reqs, nil
}

// destination resolves -o and -d against cwd: -o FILE saves to FILE (inside
// -d DIR when FILE is relative and -d is given); otherwise the files go into
// -d DIR, else cwd, named by the library.
func (o *getOptions) destination(cwd string) (dest string, isDir bool, err error) {
	dir := cwd
	if o.dir != "" {
		dir = o.dir
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(cwd, dir)
		}
	}
	dir = filepath.Clean(dir)
	if o.output == "" {
		return dir, true, nil
	}
	if o.output == "-" {
		// curl and wget write to stdout here; a pipe cannot be continued
		// after an interruption, which is what durl is for.
		return "", false, usageErrorf("-o - (standard output) is not supported: durl saves to a file so that a rerun can continue it; use -o FILE (-o ./- for a file named -)")
	}
	if strings.HasSuffix(o.output, "/") || strings.HasSuffix(o.output, string(filepath.Separator)) {
		return "", false, usageErrorf("-o %s names a folder; use -d %s to save into it", o.output, o.output)
	}
	file := o.output
	if !filepath.IsAbs(file) {
		file = filepath.Join(dir, file)
	}
	file = filepath.Clean(file)
	if fi, err := os.Stat(file); err == nil && fi.IsDir() {
		return "", false, usageErrorf("-o %s is a folder; use -d %s to save into it", o.output, o.output)
	}
	return file, false, nil
}

// readURLList reads the URLs of an -i file ("-" is stdin): one per line,
// blank lines and lines starting with '#' skipped, surrounding spaces
// ignored.
func readURLList(name string, stdin io.Reader) ([]string, error) {
	var r io.Reader = stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, usageErrorf("cannot read the URL list: %v", unwrapPathError(err))
		}
		defer f.Close()
		r = f
	}
	return parseURLList(r, name)
}

// parseURLList parses a URL list from r; name is used in error messages.
func parseURLList(r io.Reader, name string) ([]string, error) {
	if name == "-" {
		name = "stdin"
	}
	var urls []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if n == 1 {
			line = strings.TrimSpace(strings.TrimPrefix(line, "\ufeff")) // a UTF-8 byte order mark
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := checkURL(line); err != nil {
			return nil, usageErrorf("%s, line %d: %v", name, n, err)
		}
		urls = append(urls, line)
	}
	if err := sc.Err(); err != nil {
		return nil, usageErrorf("cannot read the URL list %s: %v", name, err)
	}
	return urls, nil
}

// checkTargets checks what durl get and durl add share: at least one URL,
// each absolute http or https; -o, --checksum and --mirror, which describe
// one file, with one URL only; -x within api.MaxConnections. Errors are
// *usageError.
func checkTargets(urls []string, output, checksum string, mirrors []string, conns int) error {
	switch {
	case len(urls) == 0:
		return usageErrorf("no URL given")
	case output != "" && len(urls) > 1:
		return usageErrorf("-o names one file but %d URLs were given; use -d DIR for several", len(urls))
	case checksum != "" && len(urls) > 1:
		return usageErrorf("--checksum applies to one URL but %d URLs were given", len(urls))
	case len(mirrors) > 0 && len(urls) > 1:
		return usageErrorf("--mirror applies to one URL but %d URLs were given", len(urls))
	case conns < 0 || conns > api.MaxConnections:
		return usageErrorf("-x must be from 0 to %d", api.MaxConnections)
	}
	for _, u := range append(slices.Clip(urls), mirrors...) {
		if err := checkURL(u); err != nil {
			return err
		}
	}
	return nil
}

// checkURL reports whether raw is an absolute http or https URL.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return usageErrorf("%q is not a valid URL", raw)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return usageErrorf("%q is not an http or https URL", raw)
	}
	if u.Host == "" {
		return usageErrorf("%q has no host", raw)
	}
	return nil
}

// dedupe removes repeated URLs, keeping the first of each: they would all
// save to the same file.
func dedupe(urls []string) []string {
	seen := make(map[string]bool, len(urls))
	out := urls[:0]
	for _, u := range urls {
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	return out
}

// parseHeaders parses -H values of the form "Name: value".
func parseHeaders(values []string) (http.Header, error) {
	if len(values) == 0 {
		return nil, nil
	}
	h := make(http.Header)
	for _, v := range values {
		name, value, err := httpx.ParseHeaderLine(v)
		if err != nil {
			return nil, usageErrorf("-H %q: %v", v, err)
		}
		h.Add(name, value)
	}
	return h, nil
}

// checksumLengths are the hex lengths of the digests --checksum accepts.
var checksumLengths = map[string]int{"sha256": 64, "sha512": 128, "sha1": 40, "md5": 32}

// parseChecksum checks a --checksum value and returns it normalised to
// lower case ("" when empty).
func parseChecksum(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	algo, hex, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), ":")
	want, known := checksumLengths[algo]
	switch {
	case !ok || !known:
		return "", usageErrorf("--checksum %q: want ALGO:HEX with ALGO sha256, sha512, sha1 or md5", s)
	case len(hex) != want || strings.Trim(hex, "0123456789abcdef") != "":
		return "", usageErrorf("--checksum %q: a %s digest is %d hex digits", s, algo, want)
	}
	return algo + ":" + hex, nil
}

// sessionOptions returns the session's options for these flags.
func (o *getOptions) sessionOptions(stateDir string) (durl.Options, error) {
	opts := durl.Options{
		StateDir:    stateDir,
		Recovery:    durl.ReportInterrupted,
		LazyRecords: true, // the command line is the list: a rerun starts what was never recorded
		MaxActive:   o.jobs,
		Retry:       durl.RetryPolicy{MaxAttempts: o.retries},
		NoSync:      o.noSync,
	}
	if o.limitRate != "" {
		rate, err := parseByteSize(o.limitRate)
		if err != nil {
			return opts, usageErrorf("--limit-rate: %v", err)
		}
		opts.RateLimit = rate
	}
	client, err := o.httpClient()
	if err != nil {
		return opts, err
	}
	opts.Client = client
	return opts, nil
}

// httpClient returns the client for --cacert and --proxy, or nil for the
// library's default (which takes the proxy from the environment).
func (o *getOptions) httpClient() (*http.Client, error) {
	if o.cacert == "" && o.proxy == "" {
		return nil, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.proxy != "" {
		u, err := url.Parse(o.proxy)
		if err != nil || u.Host == "" || !strings.Contains(o.proxy, "://") {
			return nil, usageErrorf("--proxy %q: want a URL such as http://proxy.example:3128", o.proxy)
		}
		tr.Proxy = http.ProxyURL(u)
	}
	if o.cacert != "" {
		pem, err := os.ReadFile(o.cacert)
		if err != nil {
			return nil, usageErrorf("--cacert: %v", unwrapPathError(err))
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usageErrorf("--cacert %s: no PEM certificate found", o.cacert)
		}
		tr.TLSClientConfig = tr.TLSClientConfig.Clone()
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = new(tls.Config)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr}, nil
}

// unwrapPathError turns "open FILE: no such file or directory" into
// "FILE: no such file or directory": the operation is clear from context.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}
