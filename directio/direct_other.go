//go:build !linux

package directio

import (
	"errors"
	"os"
)

// oDirect is 0: direct I/O is used on Linux only.
const oDirect = 0

func setDirect(*os.File, bool) error { return errors.ErrUnsupported }

func isEINVAL(error) bool { return false }
