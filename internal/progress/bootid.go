package progress

import (
	"crypto/rand"
	"crypto/sha256"
	"os"
)

// BootID identifies the current boot of the machine, from
// /proc/sys/kernel/random/boot_id on Linux. Where there is none it returns a
// random value, so volatile records are never trusted across processes:
// safe, at the price of falling back to the last durable checkpoint.
func BootID() [16]byte {
	var id [16]byte
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil || len(b) == 0 {
		rand.Read(id[:])
		return id
	}
	sum := sha256.Sum256(b)
	copy(id[:], sum[:])
	return id
}
