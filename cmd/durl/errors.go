package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"

	"github.com/durl-dev/durl"
)

// downloadError is an error about one download that has no *durl.TaskError
// to say which, such as an error of Session.Start.
type downloadError struct {
	URL string
	Err error
}

func (e *downloadError) Error() string { return e.URL + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *downloadError) Unwrap() error { return e.Err }

// errInterrupted is the error of a command stopped by Ctrl-C or SIGTERM.
var errInterrupted = errors.New("interrupted")

// exitCode maps an error to the process's exit code (docs/exit-codes.md).
func exitCode(err error) int {
	var (
		usage  *usageError
		status *durl.StatusError
		disk   *durl.DiskError
		done   *exitStatus
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &done):
		return done.code
	case errors.As(err, &usage):
		return exitUsage
	case errors.Is(err, durl.ErrLocked):
		return exitLocked
	case errors.Is(err, durl.ErrPaused), errors.Is(err, errInterrupted), errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, durl.ErrChecksumMismatch):
		return exitChecksum
	case errors.Is(err, durl.ErrRemoteChanged):
		return exitRemoteChanged
	case errors.As(err, &disk), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return exitDisk
	case errors.As(err, &status), isNetworkError(err):
		return exitNetwork
	}
	return exitError
}

// isNetworkError reports whether err is a failure to talk to the server:
// DNS, connection, TLS, timeout, or a connection that broke mid-answer.
func isNetworkError(err error) bool {
	var (
		netErr  net.Error
		urlErr  *url.Error
		opErr   *net.OpError
		tlsRec  tls.RecordHeaderError
		tlsCert *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	return errors.As(err, &netErr) || errors.As(err, &urlErr) || errors.As(err, &opErr) ||
		errors.As(err, &tlsRec) || errors.As(err, &tlsCert) || errors.As(err, &unknown) ||
		errors.As(err, &host) || errors.As(err, &invalid) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, context.DeadlineExceeded)
}

// describe turns an error into the one line a user sees: what happened and
// what to do.
func describe(err error) string {
	if err == nil {
		return ""
	}
	prefix := "durl: "
	var (
		te *durl.TaskError
		de *downloadError
	)
	switch {
	case errors.As(err, &te):
		prefix += redactURL(te.URL) + ": "
	case errors.As(err, &de):
		prefix += redactURL(de.URL) + ": "
	}
	return clean(oneLine(prefix + whatHappened(err) + "; " + advice(err)))
}

// whatHappened is the part of describe's line that says what went wrong.
func whatHappened(err error) string {
	var (
		status *durl.StatusError
		disk   *durl.DiskError
		te     *durl.TaskError
		de     *downloadError
		inUse  *durl.DestinationInUseError
	)
	switch {
	case errors.As(err, &status):
		return "the server answered " + status.Status
	case errors.As(err, &inUse):
		return redactURL(inUse.URL) + " is being saved under the same name, " + inUse.Path
	case errors.Is(err, durl.ErrLocked):
		return "another durl is already downloading this file"
	case errors.Is(err, durl.ErrPaused), errors.Is(err, errInterrupted), errors.Is(err, context.Canceled):
		return "paused"
	case errors.Is(err, durl.ErrChecksumMismatch):
		return "the downloaded file does not match the expected checksum; it was kept aside, not saved"
	case errors.Is(err, durl.ErrRemoteChanged):
		return "the remote file changed during the download and the download could not start over"
	case errors.As(err, &disk):
		return trimPrefix(disk.Error())
	case errors.As(err, &te):
		return errText(te.Err)
	case errors.As(err, &de):
		return errText(de.Err)
	}
	return errText(err)
}

// errText is the message of err without the "durl: " prefix, and without
// the method and URL of a *url.Error, which the line already names.
func errText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	return trimPrefix(err.Error())
}

// advice is the part of describe's line that says what to do.
func advice(err error) string {
	var (
		status  *durl.StatusError
		disk    *durl.DiskError
		unknown x509.UnknownAuthorityError
		tlsCert *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &status):
		switch {
		case status.StatusCode == 401 || status.StatusCode == 403:
			return "check the URL and your credentials (-H 'Authorization: ...')"
		case status.Temporary():
			return "the server may be busy; run the same command again later to continue"
		case status.StatusCode >= 500:
			return "the server failed; run the same command again later to continue"
		}
		return "check the URL"
	case errors.As(err, new(*durl.DestinationInUseError)):
		return "download them into different folders (-d DIR)"
	case errors.Is(err, durl.ErrLocked):
		return "wait for the other durl to finish, or stop it and run this command again"
	case errors.Is(err, durl.ErrPaused), errors.Is(err, errInterrupted), errors.Is(err, context.Canceled):
		return "run the same command again to continue"
	case errors.Is(err, durl.ErrChecksumMismatch):
		return "check the --checksum value and the URL"
	case errors.Is(err, durl.ErrRemoteChanged):
		return "run the same command again to download the new version from the start"
	case errors.As(err, &disk), errors.Is(err, syscall.ENOSPC):
		return "free some space or fix the folder, then run the same command again to continue"
	case errors.As(err, &unknown), errors.As(err, &tlsCert):
		return "if the server uses a private certificate authority, pass its certificate with --cacert FILE"
	case isNetworkError(err):
		return "check the URL, your network and proxy, then run the same command again to continue"
	}
	return "run the same command again; if it keeps failing, please report it"
}

// trimPrefix removes the "durl: " that the library's messages start with.
func trimPrefix(s string) string {
	for {
		t, ok := strings.CutPrefix(s, "durl: ")
		if !ok {
			return s
		}
		s = t
	}
}

// oneLine folds a message onto one line.
func oneLine(s string) string {
	return strings.TrimSpace(strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ", "\t", " ").Replace(s))
}

// clean replaces the control characters of s (which could come from a
// hostile server, such as a file name) with '?', so that output never holds
// a control character.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

// redactURL hides the password of a URL's user information.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
