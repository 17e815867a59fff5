// Package interop holds end-to-end durability tests of the durl binary: it
// is killed with SIGKILL at random moments while downloading from the
// durltest fault server and from a real nginx, run again, and checked for
// the exact bytes of the remote file (D2: never a mix of two versions) and
// for how much the server had to send again (D5: bounded loss per kill).
// curl is measured the same way as a reference.
//
// The package has no code of its own; it only holds tests. nginx is
// installed with apt-get when missing (internal/nginxtest); without it the
// nginx tests are skipped, or fail when the environment variable CI is set.
package interop
