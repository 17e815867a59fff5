package main

import (
	"fmt"
	"io"
	"net/url"
	"path"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/durl-dev/durl/api"
)

// taskTableHeader is the header row of durl ls and durl watch.
var taskTableHeader = []string{"ID", "STATE", "PROGRESS", "SIZE", "RATE", "NAME"}

// writeTable writes rows as columns separated by two spaces.
func writeTable(w io.Writer, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// taskRows returns the table of tasks, header first.
func taskRows(tasks []api.Task) [][]string {
	rows := [][]string{taskTableHeader}
	for _, t := range tasks {
		rows = append(rows, taskRow(t))
	}
	return rows
}

// taskRow is the row of one task.
func taskRow(t api.Task) []string {
	return []string{clean(t.ID), clean(t.State), taskProgress(t), taskSize(t), taskRate(t), taskName(t)}
}

// taskProgress is a task's progress: a percentage when its size is known,
// else the bytes written.
func taskProgress(t api.Task) string {
	switch {
	case t.State == api.StateCompleted:
		return "100%"
	case t.Total > 0:
		return strconv.FormatInt(min(t.Written*100/t.Total, 100), 10) + "%"
	}
	return formatSize(t.Written)
}

// taskSize is a task's size, "?" when unknown.
func taskSize(t api.Task) string {
	if t.Total < 0 {
		return "?"
	}
	return formatSize(t.Total)
}

// taskRate is a running task's speed, "-" for the others.
func taskRate(t api.Task) string {
	if t.State != api.StateRunning {
		return "-"
	}
	return formatRate(t.Rate)
}

// taskName is the name of a task's file, else the last part of its URL.
func taskName(t api.Task) string {
	name := ""
	if t.Path != "" {
		name = path.Base(strings.ReplaceAll(t.Path, "\\", "/"))
	} else if u, err := url.Parse(t.URL); err == nil {
		name = path.Base(u.Path)
	}
	if name == "" || name == "." || name == "/" {
		name = redactURL(t.URL)
	}
	return clean(name)
}
