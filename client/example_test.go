package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/durl-dev/durl/api"
	"github.com/durl-dev/durl/client"
)

// Example adds a download to a daemon and waits for it to end. The daemon
// here is a tiny stand-in, so that the example runs anywhere.
func Example() {
	daemon := httptest.NewServer(fakeDaemon())
	defer daemon.Close()

	ctx := context.Background()
	c := client.New(daemon.URL, "TOKEN")
	tasks, err := c.Add(ctx, api.Download{URL: "https://example.com/big.iso", Dir: "/srv/downloads"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("added", tasks[0].ID, tasks[0].State)

	done, err := c.Wait(ctx, tasks[0].ID)
	if err != nil {
		log.Fatal(err)
	}
	t := done[tasks[0].ID]
	fmt.Println(t.ID, t.State, t.Path)

	_, err = c.Task(ctx, "nope")
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Status, apiErr.Code)
	}
	// Output:
	// added t1 queued
	// t1 completed /srv/downloads/big.iso
	// 404 not_found
}

// ExampleDial connects to the daemon of a state folder and follows its
// events.
func ExampleDial() {
	c, err := client.Dial(os.Getenv("DURL_STATE"))
	if errors.Is(err, client.ErrNoDaemon) {
		log.Fatal(err) // says how to start one: durl serve --state DIR
	}
	if err != nil {
		log.Fatal(err)
	}
	events := c.Events(context.Background(), 0)
	defer events.Close()
	for {
		ev, err := events.Next()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.ID, ev.Kind, ev.TaskID)
	}
}

// fakeDaemon answers like a daemon whose downloads complete at once.
func fakeDaemon() http.Handler {
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/tasks", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, api.AddResponse{Tasks: []api.Task{{ID: "t1", State: api.StateQueued}}})
	})
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, api.Stats{LastID: 1})
	})
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // no events: the download is already complete
	})
	mux.HandleFunc("GET /v1/tasks/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "t1" {
			reply(w, http.StatusNotFound, api.ErrorResponse{Error: api.Error{Code: api.CodeNotFound, Message: "no such task"}})
			return
		}
		reply(w, http.StatusOK, api.Task{ID: "t1", State: api.StateCompleted, Path: "/srv/downloads/big.iso"})
	})
	return mux
}
