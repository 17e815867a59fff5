// Package resumedata seals and opens durl's resume data: a versioned
// envelope around a payload, signed with the session's key so that data
// that is corrupted, truncated, tampered with or made by another session is
// refused.
//
// Layout: "DURLRD" | version (1 byte) | session id (16 bytes) |
// payload length (4 bytes, big endian) | payload | HMAC-SHA256 of all that.
package resumedata

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the format version this build writes and reads.
const Version = 1

const (
	magic     = "DURLRD"
	headerLen = len(magic) + 1 + 16 + 4
	macLen    = sha256.Size
	// MaxPayload bounds the payload, so a hostile length cannot make the
	// decoder allocate.
	MaxPayload = 1 << 20
)

// The reasons resume data is refused.
var (
	ErrMalformed      = errors.New("it is not durl resume data, or it is truncated")
	ErrNewerVersion   = errors.New("it was made by a newer version of durl")
	ErrOtherSession   = errors.New("it belongs to another session (state folder)")
	ErrBadSignature   = errors.New("it was corrupted or tampered with")
	ErrPayloadTooLong = errors.New("its payload is too large")
)

// Seal wraps payload for the session sessionID, signed with key.
func Seal(key []byte, sessionID [16]byte, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return nil, ErrPayloadTooLong
	}
	b := make([]byte, 0, headerLen+len(payload)+macLen)
	b = append(b, magic...)
	b = append(b, Version)
	b = append(b, sessionID[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = append(b, payload...)
	return append(b, mac(key, b)...), nil
}

// Open checks data and returns its payload.
func Open(key []byte, sessionID [16]byte, data []byte) ([]byte, error) {
	if len(data) < headerLen+macLen || string(data[:len(magic)]) != magic {
		return nil, ErrMalformed
	}
	if v := data[len(magic)]; v > Version {
		return nil, fmt.Errorf("%w (format %d, this build reads %d)", ErrNewerVersion, v, Version)
	} else if v != Version {
		return nil, ErrMalformed
	}
	var sid [16]byte
	copy(sid[:], data[len(magic)+1:])
	n := binary.BigEndian.Uint32(data[headerLen-4:])
	if n > MaxPayload || int(n) != len(data)-headerLen-macLen {
		return nil, ErrMalformed
	}
	if sid != sessionID {
		return nil, ErrOtherSession
	}
	body := data[:len(data)-macLen]
	if !hmac.Equal(mac(key, body), data[len(body):]) {
		return nil, ErrBadSignature
	}
	return body[headerLen:], nil
}

func mac(key, b []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(b)
	return h.Sum(nil)
}
