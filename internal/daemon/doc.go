// Package daemon is durl serve: one durl.Session over a state folder, driven
// through the HTTP+JSON API that package api describes, on a Unix socket in
// the state folder and, when asked, on TCP behind a bearer token.
//
// New opens the session (resuming every task a previous daemon left in
// flight) and the event log; Serve listens and answers until its context is
// done, then stops gracefully: every running task is checkpointed and
// resumes on the next start. Handler gives the API without listening, for
// tests.
//
// Everything that happens to a task is appended to an event log on disk
// (<state>/events.db) and streamed to clients as server-sent events; a
// client that reconnects with Last-Event-ID receives what it missed.
package daemon
