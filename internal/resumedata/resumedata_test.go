package resumedata

import (
	"bytes"
	"errors"
	"testing"
)

var (
	key = []byte("0123456789abcdef0123456789abcdef")
	sid = [16]byte{1, 2, 3}
)

func TestRoundTrip(t *testing.T) {
	data, err := Seal(key, sid, []byte(`{"task":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(key, sid, data)
	if err != nil || string(got) != `{"task":"x"}` {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestRefused(t *testing.T) {
	good, _ := Seal(key, sid, []byte("payload"))
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 1; return b }
	newer := bytes.Clone(good)
	newer[len(magic)] = Version + 1
	cases := []struct {
		name string
		data []byte
		key  []byte
		sid  [16]byte
		want error
	}{
		{"empty", nil, key, sid, ErrMalformed},
		{"truncated", good[:len(good)-1], key, sid, ErrMalformed},
		{"extended", append(bytes.Clone(good), 0), key, sid, ErrMalformed},
		{"not durl", []byte("hello, this is not resume data at all, sorry!!!!!!!!!!!!!!"), key, sid, ErrMalformed},
		{"payload flipped", flip(headerLen + 2), key, sid, ErrBadSignature},
		{"mac flipped", flip(len(good) - 1), key, sid, ErrBadSignature},
		{"newer version", newer, key, sid, ErrNewerVersion},
		{"other session", good, key, [16]byte{9}, ErrOtherSession},
		{"other key", good, []byte("another key"), sid, ErrBadSignature},
	}
	for _, c := range cases {
		if _, err := Open(c.key, c.sid, c.data); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

func FuzzOpen(f *testing.F) {
	good, _ := Seal(key, sid, []byte(`{"id":"abc"}`))
	f.Add(good)
	f.Add([]byte("DURLRD"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		payload, err := Open(key, sid, data)
		if err != nil {
			return
		}
		// Anything accepted must be exactly what Seal makes of its payload.
		again, err := Seal(key, sid, payload)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted data that Seal would not produce")
		}
	})
}
