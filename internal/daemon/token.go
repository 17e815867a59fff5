package daemon

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/durl-dev/durl/api"
)

// MinTokenLength is the shortest bearer token the daemon accepts.
const MinTokenLength = 16

// loadToken returns the bearer token of the TCP listener: given, when not
// empty; else the one in <stateDir>/token, generated there (mode 0600)
// when missing.
func loadToken(stateDir, given string) (string, error) {
	if given != "" {
		if err := checkToken(given); err != nil {
			return "", fmt.Errorf("--token: %w", err)
		}
		return given, nil
	}
	path := filepath.Join(stateDir, api.TokenName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newTokenFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("cannot read the token: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("cannot read the token: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("the token file %s can be read by other users; remove it (a new token is generated) or run chmod 600 on it", path)
	}
	token := strings.TrimSpace(string(b))
	if err := checkToken(token); err != nil {
		return "", fmt.Errorf("the token file %s: %w; remove it to generate a new token", path, err)
	}
	return token, nil
}

// checkToken refuses a token too short to be safe or that cannot be sent
// in a header.
func checkToken(token string) error {
	if len(token) < MinTokenLength {
		return fmt.Errorf("the token must be at least %d characters", MinTokenLength)
	}
	for _, c := range []byte(token) {
		if c <= ' ' || c >= 0x7f {
			return errors.New("the token must be printable ASCII without spaces")
		}
	}
	return nil
}

// newTokenFile generates a random token and writes it to path with mode
// 0600, atomically: a reader never sees a half-written token.
func newTokenFile(path string) (string, error) {
	b := make([]byte, 32)
	rand.Read(b)
	token := hex.EncodeToString(b)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".token-*")
	if err != nil {
		return "", fmt.Errorf("cannot write the token: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	_, err = tmp.WriteString(token + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return "", fmt.Errorf("cannot write the token: %w", err)
	}
	return token, nil
}

// requireToken answers 401 to a request without the bearer token, and
// passes the others to next. The comparison takes the same time whatever
// the token sent.
func requireToken(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent, ok := bearerToken(r)
		got := sha256.Sum256([]byte(sent))
		if !ok || token == "" || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="durl"`)
			writeError(w, errorf(http.StatusUnauthorized, api.CodeUnauthorized,
				"missing or wrong bearer token: send the header 'Authorization: Bearer TOKEN' with the token of durl serve (the file %q in its state folder, or its --token)", api.TokenName))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearerToken returns the token of the request's Authorization header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}
