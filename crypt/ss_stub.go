package crypt

// TEMPORARY stand-in for secretstream.go (helper-20); deleted on merge.

import (
	"crypto/rand"
	"errors"

	"golang.org/x/crypto/chacha20poly1305"
)

const (
	ssKeyBytes    = 32
	ssHeaderBytes = 24
	ssABytes      = 17
	ssTagMessage  = 0
	ssTagPush     = 1
	ssTagRekey    = 2
	ssTagFinal    = 3
)

var errSSAuth = errors.New("secretstream: message forged, corrupt or under a different key")

type ssPush struct {
	key   [32]byte
	nonce [24]byte
	n     uint64
}

func newSSPush(key *[32]byte) (header [24]byte, s *ssPush) {
	rand.Read(header[:])
	return header, &ssPush{key: *key, nonce: header}
}

func (s *ssPush) seal(out, m, ad []byte, tag byte) []byte {
	a, _ := chacha20poly1305.NewX(s.key[:])
	nonce := s.nonce
	nonce[0] ^= byte(s.n)
	nonce[1] ^= byte(s.n >> 8)
	s.n++
	out = append(out, tag)
	return a.Seal(out, nonce[:], m, append(append([]byte{}, ad...), tag))
}

type ssPull struct {
	key   [32]byte
	nonce [24]byte
	n     uint64
}

func newSSPull(key *[32]byte, header []byte) (*ssPull, error) {
	if len(header) != 24 {
		return nil, errors.New("bad header")
	}
	s := &ssPull{key: *key}
	copy(s.nonce[:], header)
	return s, nil
}

func (s *ssPull) open(out, c, ad []byte) ([]byte, byte, error) {
	if len(c) < ssABytes {
		return out, 0, errSSAuth
	}
	a, _ := chacha20poly1305.NewX(s.key[:])
	nonce := s.nonce
	nonce[0] ^= byte(s.n)
	nonce[1] ^= byte(s.n >> 8)
	out, err := a.Open(out, nonce[:], c[1:], append(append([]byte{}, ad...), c[0]))
	if err != nil {
		return out, 0, errSSAuth
	}
	s.n++
	return out, c[0], nil
}
