package durl_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/durl-dev/durl"
	"github.com/durl-dev/durl/durltest"
)

// A simple download: open a session on a state folder, start a task, wait.
func Example() {
	srv := durltest.NewServer(durltest.WithContent(1, 1<<20))
	defer srv.Close()
	dir, _ := os.MkdirTemp("", "durl-example")
	defer os.RemoveAll(dir)

	s, err := durl.Open(context.Background(), durl.Options{StateDir: filepath.Join(dir, "state")})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	task, err := s.Start(durl.Request{URL: srv.FileURL(), Dest: filepath.Join(dir, "file.bin")})
	if err != nil {
		log.Fatal(err)
	}
	if err := task.Wait(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println(task.State(), task.Progress().Written)
	// Output: completed 1048576
}

// Pause hands back resume data; Session.Resume continues from there, even
// in a later process that opens the same state folder.
func ExampleTask_Pause() {
	srv := durltest.NewServer(durltest.WithContent(1, 4<<20), durltest.WithRate(8<<20))
	defer srv.Close()
	dir, _ := os.MkdirTemp("", "durl-example")
	defer os.RemoveAll(dir)
	state := filepath.Join(dir, "state")

	s, _ := durl.Open(context.Background(), durl.Options{StateDir: state})
	task, _ := s.Start(durl.Request{URL: srv.FileURL(), Dest: filepath.Join(dir, "file.bin")})
	resumeData, err := task.Pause()
	if err != nil {
		log.Fatal(err)
	}
	s.Close()

	s, _ = durl.Open(context.Background(), durl.Options{StateDir: state})
	defer s.Close()
	task, err = s.Resume(resumeData)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(task.Wait(context.Background()))
	// Output: <nil>
}

// After a crash, a session opened with ReportInterrupted hands back every
// task that was in flight with its resume data, the way NSURLSession calls
// didCompleteWithError: on the app's next launch. (With the default,
// ResumeInterrupted, Open simply resumes them.)
func ExampleSession_Interrupted() {
	srv := durltest.NewServer(durltest.WithContent(1, 4<<20), durltest.WithRate(8<<20))
	defer srv.Close()
	dir, _ := os.MkdirTemp("", "durl-example")
	defer os.RemoveAll(dir)
	state := filepath.Join(dir, "state")

	// A process starts a download and goes away while it runs. (Closing
	// the session leaves the task in flight, exactly as a kill -9 would.)
	s, _ := durl.Open(context.Background(), durl.Options{StateDir: state})
	s.Start(durl.Request{URL: srv.FileURL(), Dest: filepath.Join(dir, "file.bin")})
	s.Close()

	// The next launch.
	s, err := durl.Open(context.Background(), durl.Options{StateDir: state, Recovery: durl.ReportInterrupted})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	for _, task := range s.Interrupted() {
		fmt.Println(task.State())
		data, err := task.ResumeData()
		if err != nil {
			log.Fatal(err)
		}
		// Keep data for later, ask the user, or resume now:
		task, err = s.Resume(data)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(task.Wait(context.Background()))
	}
	// Output:
	// interrupted
	// <nil>
}
