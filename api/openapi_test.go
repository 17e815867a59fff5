package api

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// openAPIFile is the OpenAPI description of the API, from this package's
// folder.
const openAPIFile = "../docs/openapi.json"

// loadOpenAPI reads openAPIFile as generic JSON.
func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(openAPIFile)
	if err != nil {
		t.Fatalf("cannot read the OpenAPI description: %v", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s is not valid JSON: %v", openAPIFile, err)
	}
	return doc
}

// object returns m[key] as a JSON object, failing the test when it is not
// one.
func object(t *testing.T, m map[string]any, key, where string) map[string]any {
	t.Helper()
	v, ok := m[key].(map[string]any)
	if !ok {
		t.Fatalf("%s: %q is missing or not an object", where, key)
	}
	return v
}

// stringList returns the JSON array v as strings, failing the test when it is
// not an array of strings.
func stringList(t *testing.T, v any, where string) []string {
	t.Helper()
	list, ok := v.([]any)
	if !ok {
		t.Fatalf("%s: not an array", where)
	}
	out := make([]string, len(list))
	for i, x := range list {
		s, ok := x.(string)
		if !ok {
			t.Fatalf("%s: element %d is not a string", where, i)
		}
		out[i] = s
	}
	return out
}

// TestOpenAPIPaths checks that every path of the API is described, with
// the methods api.go says it answers, and that no other path is.
func TestOpenAPIPaths(t *testing.T) {
	paths := object(t, loadOpenAPI(t), "paths", openAPIFile)
	want := map[string][]string{
		PathVersion:   {"get"},
		PathTasks:     {"get", "post"},
		PathTask:      {"get", "patch", "delete"},
		PathPause:     {"post"},
		PathResume:    {"post"},
		PathCancel:    {"post"},
		PathPauseAll:  {"post"},
		PathResumeAll: {"post"},
		PathStats:     {"get"},
		PathLimits:    {"get", "patch"},
		PathEvents:    {"get"},
		PathMetrics:   {"get"},
	}
	for path, methods := range want {
		item, ok := paths[path].(map[string]any)
		if !ok {
			t.Errorf("paths: %s is missing", path)
			continue
		}
		var got []string
		for _, m := range []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"} {
			if _, ok := item[m]; ok {
				got = append(got, m)
			}
		}
		slices.Sort(got)
		sorted := slices.Sorted(slices.Values(methods))
		if !slices.Equal(got, sorted) {
			t.Errorf("paths: %s has the methods %v, want %v", path, got, sorted)
		}
	}
	for path := range paths {
		if _, ok := want[path]; !ok {
			t.Errorf("paths: %s is not a path of api.go", path)
		}
	}
}

// TestOpenAPISchemas checks that each struct of api.go has a schema in
// components/schemas whose properties are exactly its JSON fields.
func TestOpenAPISchemas(t *testing.T) {
	schemas := object(t, object(t, loadOpenAPI(t), "components", openAPIFile), "schemas", "components")
	types := []any{
		Version{}, Download{}, AddRequest{}, AddResponse{}, Task{}, TaskList{},
		TaskPatch{}, Limits{}, Stats{}, Event{}, Error{}, ErrorResponse{},
	}
	for _, v := range types {
		typ := reflect.TypeOf(v)
		name := typ.Name()
		schema, ok := schemas[name].(map[string]any)
		if !ok {
			t.Errorf("components/schemas/%s is missing", name)
			continue
		}
		props, ok := schema["properties"].(map[string]any)
		if !ok {
			t.Errorf("components/schemas/%s has no properties", name)
			continue
		}
		fields := jsonFields(typ)
		for _, f := range fields {
			if _, ok := props[f]; !ok {
				t.Errorf("components/schemas/%s: the property %q of %s is missing", name, f, name)
			}
		}
		for p := range props {
			if !slices.Contains(fields, p) {
				t.Errorf("components/schemas/%s: the property %q is not a JSON field of %s", name, p, name)
			}
		}
	}
}

// jsonFields returns the JSON names of the fields of the struct type typ,
// as encoding/json names them.
func jsonFields(typ reflect.Type) []string {
	var names []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			names = append(names, jsonFields(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
	}
	return names
}

// TestOpenAPIEnums checks that the enums of Task.state, Event.kind and
// Error.code hold exactly the constants of api.go.
func TestOpenAPIEnums(t *testing.T) {
	schemas := object(t, object(t, loadOpenAPI(t), "components", openAPIFile), "schemas", "components")
	tests := []struct {
		schema, property string
		want             []string
	}{
		{"Task", "state", []string{
			StateQueued, StateRunning, StatePaused, StateInterrupted, StateCompleted, StateFailed, StateCancelled,
		}},
		{"Event", "kind", []string{
			EventAdded, EventStarted, EventProgress, EventRetrying, EventRestarted, EventPaused, EventResumed,
			EventInterrupted, EventRecovered, EventCompleted, EventFailed, EventCancelled, EventRemoved,
			EventWarning, EventGap,
		}},
		{"Error", "code", []string{
			CodeBadRequest, CodeTooLarge, CodeUnauthorized, CodeNotFound, CodeForbidden, CodeConflict,
			CodeMethod, CodeUnavailable, CodeInternal,
			CodeNetwork, CodeRemoteChanged, CodeChecksum, CodeDisk, CodeLocked, CodeFailed,
		}},
	}
	for _, tt := range tests {
		where := "components/schemas/" + tt.schema + "/properties/" + tt.property
		schema, ok := schemas[tt.schema].(map[string]any)
		if !ok {
			t.Errorf("components/schemas/%s is missing", tt.schema)
			continue
		}
		prop := object(t, object(t, schema, "properties", "components/schemas/"+tt.schema), tt.property, "components/schemas/"+tt.schema+"/properties")
		enum, ok := prop["enum"]
		if !ok {
			t.Errorf("%s has no enum", where)
			continue
		}
		got := stringList(t, enum, where+"/enum")
		for _, w := range tt.want {
			if !slices.Contains(got, w) {
				t.Errorf("%s: the enum lacks %q", where, w)
			}
		}
		for _, g := range got {
			if !slices.Contains(tt.want, g) {
				t.Errorf("%s: the enum holds %q, which is not a constant of api.go", where, g)
			}
		}
	}
}

// TestOpenAPIBounds checks that the bounds of priorities and connections
// in the document are the constants of api.go.
func TestOpenAPIBounds(t *testing.T) {
	schemas := object(t, object(t, loadOpenAPI(t), "components", openAPIFile), "schemas", "components")
	for _, tt := range []struct {
		schema, property string
		min, max         float64
	}{
		{"Download", "priority", MinPriority, MaxPriority},
		{"TaskPatch", "priority", MinPriority, MaxPriority},
		{"Download", "connections", 0, MaxConnections},
	} {
		where := "components/schemas/" + tt.schema + "/properties"
		prop := object(t, object(t, object(t, schemas, tt.schema, "components/schemas"), "properties", where), tt.property, where)
		if prop["minimum"] != tt.min || prop["maximum"] != tt.max {
			t.Errorf("%s/%s: minimum %v, maximum %v; want %v and %v", where, tt.property, prop["minimum"], prop["maximum"], tt.min, tt.max)
		}
	}
}
