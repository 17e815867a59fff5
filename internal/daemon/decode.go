package daemon

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/durl-dev/durl/api"
)

// bodyReadTimeout bounds how long a client may take to send a body.
const bodyReadTimeout = 30 * time.Second

// decodeJSON reads the request's body, at most api.MaxBodyBytes, as one
// JSON value into v. Unknown fields, trailing data and malformed JSON are
// refused with a 400 that says where; a larger body with a 413.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(bodyReadTimeout))
	defer rc.SetReadDeadline(time.Time{})

	body := http.MaxBytesReader(w, r.Body, api.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		return badRequest("the body holds more than one JSON value; send one object")
	default:
		return decodeError(err)
	}
}

// decodeError turns an error of json.Decoder into a 4xx answer that says
// what is wrong.
func decodeError(err error) *apiError {
	var (
		tooLarge *http.MaxBytesError
		syntax   *json.SyntaxError
		typ      *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		return errorf(http.StatusRequestEntityTooLarge, api.CodeTooLarge,
			"the body is larger than %d bytes; send fewer downloads at once", api.MaxBodyBytes)
	case errors.Is(err, io.EOF):
		return badRequest("the body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("the JSON body is cut short")
	case errors.As(err, &syntax):
		return badRequest("malformed JSON at byte %d: %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typ):
		if typ.Field != "" {
			return badRequest("the field %q must be %s, not %s", typ.Field, jsonType(typ.Type.String()), typ.Value)
		}
		return badRequest("the body must be a JSON object, not %s", typ.Value)
	}
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return badRequest("unknown field %s", field)
	}
	return badRequest("cannot read the body: %s", err)
}

// jsonType names a Go type the way a JSON user knows it.
func jsonType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	}
	return "an object"
}
