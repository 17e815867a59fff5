package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/durl-dev/durl"
	"github.com/spf13/cobra"
)

// versionCmd builds durl version.
func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print durl's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a.ran = true
			_, err := fmt.Fprintln(a.env.stdout, versionString())
			return err
		},
	}
}

// versionString is the one line durl version prints, such as
// "durl 0.1.0 (go1.26.8 linux/amd64)", with the VCS revision when the
// binary was built from a repository.
func versionString() string {
	v := "durl " + durl.Version + " (" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
	if info, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			v += " " + rev
			if dirty {
				v += "-dirty"
			}
		}
	}
	return v + ")"
}
