package directio

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// oDirect is the open flag for direct I/O.
const oDirect = unix.O_DIRECT

// setDirect sets or clears O_DIRECT on f.
func setDirect(f *os.File, on bool) error {
	fd := f.Fd()
	flags, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	if on {
		flags |= unix.O_DIRECT
	} else {
		flags &^= unix.O_DIRECT
	}
	_, err = unix.FcntlInt(fd, unix.F_SETFL, flags)
	return err
}

func isEINVAL(err error) bool { return errors.Is(err, unix.EINVAL) }
