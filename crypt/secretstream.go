// Package crypt holds the encryption formats tusk reads and writes. So far
// that is libsodium's crypto_secretstream_xchacha20poly1305, in pure Go and
// byte for byte compatible with libsodium: the format wal-g writes with
// WALG_LIBSODIUM_KEY.
package crypt

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/poly1305" //nolint:staticcheck // libsodium's MAC is not the standard AEAD's, so it needs the building block.
)

// Sizes and tags of crypto_secretstream_xchacha20poly1305.
const (
	ssKeyBytes    = 32
	ssHeaderBytes = 24
	ssABytes      = 17 // tag byte + 16-byte MAC per message
	ssTagMessage  = 0
	ssTagPush     = 1
	ssTagRekey    = 2
	ssTagFinal    = 3
)

// ssMaxMessage is libsodium's MESSAGEBYTES_MAX (on 64-bit systems): a
// message's ChaCha20 blocks are numbered from 2 by a 32-bit counter. It is
// also what chacha20poly1305 accepts as plaintext, less the 64-byte tag block.
const ssMaxMessage = 64 * (1<<32 - 2)

// errSSAuth is the one error of a message that does not open: forged,
// corrupt, truncated, reordered, under another key or with other additional
// data all look the same.
var errSSAuth = errors.New("secretstream: message forged, corrupt or under a different key")

var ssZeros [16]byte

// ssState is what libsodium's crypto_secretstream_xchacha20poly1305_state
// holds, plus a chacha20poly1305 AEAD under k and a scratch buffer.
//
// Each message is ChaCha20-IETF under k and nonce: block 0's first 32 bytes
// key Poly1305, block 1 encrypts the tag byte followed by 63 zero bytes (of
// which only the first byte is sent), blocks 2 and on encrypt the message.
// The MAC covers ad, zero padding to 16 bytes, the whole encrypted 64-byte
// block, the ciphertext, then len(m)%16 zero bytes (libsodium's quirk: the
// standard AEAD pads (16-(64+len(m))%16)%16), then len(ad) and 64+len(m) as
// little-endian uint64s. Where the two paddings agree, len(m)%16 of 0 or 8,
// the message is exactly chacha20poly1305's sealing of {tag, 63 zeros} || m
// with the tag block cut to its first byte, so the AEAD (assembly on amd64
// and arm64) does the work; other lengths, in practice a stream's short last
// message, take the generic ChaCha20 and Poly1305 path.
//
// After each message the MAC's first 8 bytes are XORed into the inner
// nonce, the counter is incremented, and on a REKEY tag or a counter wrapped
// to 0 the key and inner nonce are replaced by their own encryption under
// the current nonce (block 0) and the counter restarts at 1.
type ssState struct {
	k     [32]byte
	nonce [12]byte    // counter (uint32, little-endian) || inner nonce (8 bytes)
	aead  cipher.AEAD // chacha20poly1305 under k; nil: every message takes the slow path
	buf   []byte      // the fast path's tag block and message, reused
}

func (st *ssState) init(key *[32]byte, header []byte) {
	k, err := chacha20.HChaCha20(key[:], header[:16])
	if err != nil {
		panic(err) // only for a key or input of the wrong size, which the types rule out
	}
	copy(st.k[:], k)
	copy(st.nonce[4:], header[16:ssHeaderBytes])
	st.resetCounter()
	st.newAEAD()
}

func (st *ssState) resetCounter() {
	binary.LittleEndian.PutUint32(st.nonce[:4], 1)
}

// newAEAD makes the AEAD for the current key: once per stream and rekey, not
// per message. chacha20poly1305 refuses only in FIPS 140-only mode, where
// the stream still works through the slow path.
func (st *ssState) newAEAD() {
	a, err := chacha20poly1305.New(st.k[:])
	if err != nil {
		a = nil
	}
	st.aead = a
}

// fast reports whether a message of mlen bytes can go through the AEAD: when
// libsodium's padding after the ciphertext (mlen%16 bytes) equals the
// standard one ((16-(64+mlen)%16)%16 bytes), that is when mlen%16 is 0 or 8.
func (st *ssState) fast(mlen int) bool {
	return st.aead != nil && mlen%8 == 0
}

func (st *ssState) scratch(n int) []byte {
	if cap(st.buf) < n {
		st.buf = make([]byte, n)
	}
	return st.buf[:n]
}

// advance moves the state on after the message with this MAC and tag.
func (st *ssState) advance(mac []byte, tag byte) {
	subtle.XORBytes(st.nonce[4:], st.nonce[4:], mac[:8])
	counter := binary.LittleEndian.Uint32(st.nonce[:4]) + 1
	binary.LittleEndian.PutUint32(st.nonce[:4], counter)
	if tag&ssTagRekey != 0 || counter == 0 {
		st.rekey()
	}
}

func (st *ssState) rekey() {
	var kn [40]byte
	copy(kn[:32], st.k[:])
	copy(kn[32:], st.nonce[4:])
	c, _ := chacha20.NewUnauthenticatedCipher(st.k[:], st.nonce[:]) // fails only for wrong sizes
	c.XORKeyStream(kn[:], kn[:])
	copy(st.k[:], kn[:32])
	copy(st.nonce[4:], kn[32:])
	st.resetCounter()
	st.newAEAD()
}

// polyKey returns the Poly1305 key, the first 32 bytes of block 0, from c
// positioned at block 0, and leaves c at block 1.
func polyKey(c *chacha20.Cipher) (key [32]byte) {
	var block0 [64]byte
	c.XORKeyStream(block0[:], block0[:])
	copy(key[:], block0[:])
	return key
}

// startMAC absorbs ad and its padding to 16 bytes.
func startMAC(h *poly1305.MAC, ad []byte) {
	h.Write(ad)
	h.Write(ssZeros[:-len(ad)&15])
}

// finishMAC absorbs libsodium's padding after a ciphertext of mlen bytes and
// the two lengths.
func finishMAC(h *poly1305.MAC, adlen, mlen int) {
	h.Write(ssZeros[:mlen%16])
	var lens [16]byte
	binary.LittleEndian.PutUint64(lens[:8], uint64(adlen))
	binary.LittleEndian.PutUint64(lens[8:], 64+uint64(mlen))
	h.Write(lens[:])
}

// grow extends b by n bytes, reallocating only when its capacity is short,
// and returns the extended slice and the n new bytes.
func grow(b []byte, n int) (all, tail []byte) {
	all = slices.Grow(b, n)[:len(b)+n]
	return all, all[len(b):]
}

// ssPush is the sender's state.
type ssPush struct{ st ssState }

// newSSPush starts a stream with key; header is random (crypto/rand) and
// must be written first.
func newSSPush(key *[32]byte) (header [24]byte, s *ssPush) {
	rand.Read(header[:]) // never returns an error; crashes the program if the system's generator fails
	return header, newSSPushHeader(key, header)
}

// newSSPushHeader starts a stream with key and a given header: for tests,
// which need a fixed one. Never reuse a header with the same key.
func newSSPushHeader(key *[32]byte, header [24]byte) *ssPush {
	s := &ssPush{}
	s.st.init(key, header[:])
	return s
}

// seal appends to out the encryption of m with additional data ad (may be
// nil) and tag, and returns the extended slice (len(m)+17 bytes more). The
// spare capacity of out must not overlap m or ad. It panics when m is longer
// than libsodium allows (ssMaxMessage, about 256 GiB), as libsodium aborts.
//
// The state keeps a buffer as large as the largest message whose length is
// a multiple of 8 (plus 80 bytes); a sender of 8192-byte chunks holds one of
// 8272 bytes.
func (s *ssPush) seal(out, m, ad []byte, tag byte) []byte {
	if uint64(len(m)) > ssMaxMessage {
		panic("secretstream: message too long")
	}
	st := &s.st
	out, msg := grow(out, ssABytes+len(m))
	c, mac := msg[1:1+len(m)], msg[1+len(m):]
	if st.fast(len(m)) {
		buf := st.scratch(64 + len(m) + 16)
		clear(buf[:64])
		buf[0] = tag
		copy(buf[64:], m)
		buf = st.aead.Seal(buf[:0], st.nonce[:], buf[:64+len(m)], ad)
		msg[0] = buf[0]
		copy(msg[1:], buf[64:])
	} else {
		// Called here, not in a helper, so that the Cipher stays on the stack;
		// it fails only for a key or nonce of the wrong size.
		ch, _ := chacha20.NewUnauthenticatedCipher(st.k[:], st.nonce[:])
		pk := polyKey(ch)
		h := poly1305.New(&pk)
		startMAC(h, ad)
		var block [64]byte
		block[0] = tag
		ch.XORKeyStream(block[:], block[:])
		h.Write(block[:])
		msg[0] = block[0]
		ch.XORKeyStream(c, m)
		h.Write(c)
		finishMAC(h, len(ad), len(m))
		h.Sum(mac[:0])
	}
	st.advance(mac, tag)
	return out
}

// ssPull is the receiver's state.
type ssPull struct{ st ssState }

// newSSPull starts reading a stream under key from its header, which must be
// ssHeaderBytes long. A wrong key is found only by the first open.
func newSSPull(key *[32]byte, header []byte) (*ssPull, error) {
	if len(header) != ssHeaderBytes {
		return nil, fmt.Errorf("secretstream: header of %d bytes, want %d", len(header), ssHeaderBytes)
	}
	s := &ssPull{}
	s.st.init(key, header)
	return s, nil
}

// open appends to out the decryption of c (one message: tag byte,
// ciphertext, MAC) with ad, returns it and the message's tag. A MAC failure
// returns out unchanged, tag 0xff (as libsodium) and errSSAuth, and leaves
// the state unchanged so that no later message can be opened. The MAC is
// checked in constant time before any plaintext reaches out; the spare
// capacity of out must not overlap c or ad. Like libsodium, open accepts any
// tag byte; what a tag means is the caller's business.
//
// The state keeps a buffer as large as the largest message whose length is
// a multiple of 8 (plus 80 bytes).
func (s *ssPull) open(out, c, ad []byte) ([]byte, byte, error) {
	if len(c) < ssABytes || uint64(len(c)-ssABytes) > ssMaxMessage {
		return out, 0xff, errSSAuth
	}
	st := &s.st
	mlen := len(c) - ssABytes
	body, mac := c[1:1+mlen], c[1+mlen:]

	// Called here, not in a helper, so that the Cipher stays on the stack;
	// it fails only for a key or nonce of the wrong size.
	ch, _ := chacha20.NewUnauthenticatedCipher(st.k[:], st.nonce[:])
	// Block 1 decrypts the tag; its bytes 1..63, the encryption of the
	// zeros, are part of what the MAC covers.
	var block [64]byte
	if st.fast(mlen) {
		ch.SetCounter(1)
		block[0] = c[0]
		ch.XORKeyStream(block[:], block[:])
		tag := block[0]
		block[0] = c[0]
		buf := st.scratch(64 + mlen + 16)
		copy(buf, block[:])
		copy(buf[64:], c[1:])
		// The AEAD checks the MAC in constant time and, on failure, zeroes
		// what it decrypted into buf.
		m, err := st.aead.Open(buf[:0], st.nonce[:], buf, ad)
		if err != nil {
			return out, 0xff, errSSAuth
		}
		out = append(out, m[64:]...)
		st.advance(mac, tag)
		return out, tag, nil
	}
	pk := polyKey(ch)
	h := poly1305.New(&pk)
	startMAC(h, ad)
	block[0] = c[0]
	ch.XORKeyStream(block[:], block[:])
	tag := block[0]
	block[0] = c[0]
	h.Write(block[:])
	h.Write(body)
	finishMAC(h, len(ad), mlen)
	if !h.Verify(mac) {
		return out, 0xff, errSSAuth
	}
	out, m := grow(out, mlen)
	ch.XORKeyStream(m, body)
	st.advance(mac, tag)
	return out, tag, nil
}
