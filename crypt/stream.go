package crypt

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// An encrypted object is one secretstream, exactly as wal-g writes one with
// WALG_LIBSODIUM_KEY: the 24-byte header, then the plaintext in messages of
// chunkSize bytes, each sealed with tag MESSAGE (chunkSize+17 bytes), and
// last a message of 0 to chunkSize-1 bytes with tag FINAL. A stream whose
// length is a multiple of chunkSize ends with an empty FINAL message, never
// a full one (wal-g's reader would take a full FINAL for a premature end).
//
// What tusk adds, and wal-g does not: the first message carries the
// object's key in the repository as additional data, so an object renamed
// to another key (one WAL segment's object stored under another segment's
// name) fails authentication instead of restoring the wrong data; and the
// reader requires the FINAL message and nothing after it, so a stream cut
// at a message boundary is an error, not a shorter object.
const chunkSize = 8192

// sealedChunk is a full message's size in the stream.
const sealedChunk = chunkSize + ssABytes

// SealedSize is the size of the stream that encrypts n bytes.
func SealedSize(n int64) int64 {
	return n + ssHeaderBytes + ssABytes*(n/chunkSize+1)
}

// PlainSize is the number of bytes a stream of c bytes decrypts to; ok is
// false for a length no stream of this format has.
func PlainSize(c int64) (n int64, ok bool) {
	c -= ssHeaderBytes
	if c < ssABytes {
		return 0, false
	}
	q := c / sealedChunk
	r := c - q*sealedChunk - ssABytes
	if r < 0 {
		return 0, false
	}
	return q*chunkSize + r, true
}

// sealer is an io.Reader of the stream that encrypts src: what Put sends.
type sealer struct {
	src  *bufio.Reader
	push *ssPush
	hdr  [ssHeaderBytes]byte
	ad   []byte // the first message's additional data
	// pre, if set, returns what goes before the stream's header, given
	// the first message's plaintext (age mode's envelope).
	pre   func(first []byte) []byte
	begun bool
	out   []byte // sealed bytes not yet read
	off   int
	done  bool
	err   error
}

// bufSize is what the sealer and the opener read from their source at
// once: a pipe hands over its data in reads, and 8 KiB ones would cost a
// goroutine switch per message.
const bufSize = 256 << 10

func newSealer(src io.Reader, key *[32]byte, ad []byte) *sealer {
	hdr, push := newSSPush(key)
	return &sealer{src: bufio.NewReaderSize(src, bufSize), push: push, hdr: hdr, ad: ad, out: make([]byte, 0, 2*sealedChunk+512)}
}

// Read fills p with as many sealed messages as it holds, so that a large
// read is one call.
func (s *sealer) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if s.off == len(s.out) {
			if s.done || s.err != nil {
				break
			}
			s.out, s.off = s.out[:0], 0
			s.err = s.next()
			continue
		}
		m := copy(p[n:], s.out[s.off:])
		s.off += m
		n += m
	}
	switch {
	case n > 0:
		return n, nil
	case s.err != nil:
		return 0, s.err
	case s.done:
		return 0, io.EOF
	}
	return 0, nil
}

// next seals the next message (or the last ones) into out, from where
// bufio holds the source's bytes (Peek, then Discard: no copy of them).
// Peeking one byte past a message tells whether it is the last. Only
// io.EOF itself ends the stream: any other error of src, even one that
// wraps io.EOF or io.ErrUnexpectedEOF (a connection that broke), fails the
// Put instead of sealing what came so far as a whole object.
func (s *sealer) next() error {
	c, err := s.src.Peek(chunkSize + 1)
	switch {
	case err == nil:
		s.seal(c[:chunkSize], ssTagMessage)
		s.src.Discard(chunkSize)
		return nil
	case err != io.EOF:
		return err
	}
	// The rest of the stream: a FINAL message of 0 to chunkSize-1 bytes,
	// after a full MESSAGE one if exactly a message's worth is left.
	if len(c) == chunkSize {
		s.seal(c, ssTagMessage)
		c = c[:0]
	}
	s.seal(c, ssTagFinal)
	s.src.Discard(s.src.Buffered())
	s.done = true
	return nil
}

func (s *sealer) seal(m []byte, tag byte) {
	if !s.begun {
		s.begun = true
		if s.pre != nil {
			s.out = append(s.out, s.pre(m)...)
		}
		s.out = append(s.out, s.hdr[:]...)
	}
	s.out = s.push.seal(s.out, m, s.ad, tag)
	s.ad = nil
}

// ErrDecrypt is returned (wrapped) for an object that none of the keys
// given decrypts: another key encrypted it, it was stored under another
// name, or it is not encrypted at all.
var ErrDecrypt = errors.New("cannot be decrypted")

// ErrDamaged is returned (wrapped) for an encrypted object whose first
// message authenticates but whose stream is then cut short, changed or
// followed by other bytes.
var ErrDamaged = errors.New("encrypted object is damaged")

// opener is an io.Reader of src's decryption: what Get returns.
type opener struct {
	src  *bufio.Reader
	name string // the object's key: additional data, and for errors
	keys []Key
	hint string
	pull *ssPull
	// expect, if set, is what the plaintext starts with (age mode's plain
	// header, which the envelope also carries).
	expect []byte
	// walg reads wal-g's own objects (class WALG): no additional data, and
	// the stream may end at a message boundary without a FINAL message.
	walg  bool
	msg   int  // messages opened
	ended bool // the last message opened was a full MESSAGE one
	// peeked is how many bytes of src the last message read holds: read
	// opens a message where bufio holds it (Peek), without copying it, and
	// the next read of src discards it first (consume).
	peeked int
	out    []byte
	off    int
	final  bool
	err    error
}

func newOpener(src io.Reader, name string, keys []Key, hint string) *opener {
	return &opener{src: bufio.NewReaderSize(src, bufSize), name: name, keys: keys, hint: hint}
}

// Read fills p with as many opened messages as it holds; what it returns
// is authenticated, and an error comes after the bytes before it.
func (o *opener) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if o.off == len(o.out) {
			if o.err != nil {
				break
			}
			if o.final {
				o.err = o.end()
				continue
			}
			o.out, o.off = o.out[:0], 0
			o.err = o.next()
			continue
		}
		m := copy(p[n:], o.out[o.off:])
		o.off += m
		n += m
	}
	if n > 0 {
		return n, nil
	}
	return 0, o.err
}

// end checks that nothing follows the FINAL message.
func (o *opener) end() error {
	o.consume()
	var b [1]byte
	n, err := fill(o.src, b[:])
	switch {
	case n > 0:
		return o.damaged("bytes follow the end of its encrypted stream")
	case err != nil:
		return err
	}
	return io.EOF
}

// fill reads into b until it is full or src ends. Only io.EOF itself is
// the end (and not returned); any other error is returned as it is, so
// that a transfer that broke is never taken for an object that ends there.
func fill(src io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := src.Read(b[n:])
		n += m
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (o *opener) next() error {
	o.consume()
	if o.pull == nil {
		var hdr [ssHeaderBytes]byte
		n, err := fill(o.src, hdr[:])
		if err != nil {
			return err
		}
		if n < ssHeaderBytes {
			return fmt.Errorf("%s %w: it holds %d bytes, fewer than an encrypted object's header%s", o.name, ErrDecrypt, n, o.hint)
		}
		return o.first(hdr[:])
	}
	if o.walg && o.ended {
		// wal-g's reader takes the end of the object after a full
		// message as the end of the stream.
		switch _, err := o.src.Peek(1); {
		case err == io.EOF:
			return io.EOF
		case err != nil:
			return err
		}
	}
	c, err := o.read()
	if err != nil {
		return err
	}
	m, tag, err := o.pull.open(o.out[:0], c, nil)
	if err != nil {
		return o.damaged(fmt.Sprintf("its encrypted message %d fails authentication", o.msg+1))
	}
	return o.took(m, tag, len(c))
}

// first opens the first message with each key until one authenticates it.
func (o *opener) first(hdr []byte) error {
	c, err := o.read()
	if errors.Is(err, ErrDamaged) {
		return fmt.Errorf("%s %w: it ends right after its header%s", o.name, ErrDecrypt, o.hint)
	}
	if err != nil {
		return err
	}
	for i := range o.keys {
		pull, err := newSSPull(&o.keys[i].key, hdr)
		if err != nil {
			return err
		}
		var ad []byte
		if !o.walg {
			ad = []byte(o.name)
		}
		m, tag, err := pull.open(o.out[:0], c, ad)
		if err == nil {
			o.pull = pull
			return o.took(m, tag, len(c))
		}
	}
	what := "the key given"
	if len(o.keys) > 1 {
		what = fmt.Sprintf("any of the %d keys given", len(o.keys))
	}
	return fmt.Errorf("%s %w with %s: another key encrypted it, it was stored under another name, or it is not encrypted%s", o.name, ErrDecrypt, what, o.hint)
}

// read reads one message: a full one, or a shorter last one.
func (o *opener) read() ([]byte, error) {
	o.consume()
	// bufSize holds many messages, so Peek returns a whole one unless src
	// ends first (io.EOF: the rest is the last message) or fails.
	c, err := o.src.Peek(sealedChunk)
	switch {
	case err != nil && err != io.EOF:
		return nil, err
	case len(c) < ssABytes:
		return nil, o.damaged("its encrypted stream is cut short")
	}
	o.peeked = len(c)
	return c, nil
}

// consume discards the message read last from src.
func (o *opener) consume() {
	if o.peeked > 0 {
		o.src.Discard(o.peeked)
		o.peeked = 0
	}
}

func (o *opener) took(m []byte, tag byte, n int) error {
	o.msg++
	o.out = m
	if o.msg == 1 && o.expect != nil && !bytes.HasPrefix(m, o.expect) {
		return o.damaged("the plain header of its envelope differs from the encrypted one")
	}
	switch {
	case tag == ssTagFinal:
		o.final = true
	case n < sealedChunk:
		return o.damaged("its encrypted stream is cut short")
	default:
		o.ended = true
	}
	return nil
}

func (o *opener) damaged(why string) error {
	return fmt.Errorf("%s: %w: %s", o.name, ErrDamaged, why)
}
