package crypt

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// ssMsg is one message of a test stream.
type ssMsg struct {
	m   []byte
	ad  []byte
	tag byte
	// wrap, when set, puts the counter at 0xffffffff before the message, so
	// that the message wraps it to 0 and rekeys.
	wrap bool
}

func testKey(seed byte) *[32]byte {
	var k [32]byte
	for i := range k {
		k[i] = seed + byte(i)*7
	}
	return &k
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31) ^ seed
	}
	return b
}

func setCounter(st *ssState, counter uint32) {
	binary.LittleEndian.PutUint32(st.nonce[:4], counter)
}

// chunked splits data into messages of 8192 bytes as wal-g writes them: the
// last one (short, possibly empty) is FINAL.
func chunked(data, ad []byte) []ssMsg {
	var msgs []ssMsg
	for len(data) >= 8192 {
		msgs = append(msgs, ssMsg{m: data[:8192], ad: ad, tag: ssTagMessage})
		data = data[8192:]
	}
	return append(msgs, ssMsg{m: data, ad: ad, tag: ssTagFinal})
}

type ssCase struct {
	name string
	msgs []ssMsg
}

// ssCases are the streams that the reference and round-trip tests run.
func ssCases() []ssCase {
	type tc = ssCase
	var cases []tc
	for _, n := range []int{0, 1, 15, 16, 17, 63, 64, 8191, 8192, 8193, 3 * 8192, 1<<20 + 1} {
		cases = append(cases, tc{fmt.Sprintf("%d bytes", n), chunked(pattern(n, byte(n)), nil)})
		if n <= 8193 {
			// One message of n bytes with additional data of every padding.
			for _, adlen := range []int{1, 16, 23} {
				cases = append(cases, tc{fmt.Sprintf("%d bytes ad %d", n, adlen),
					[]ssMsg{{m: pattern(n, 1), ad: pattern(adlen, 2), tag: ssTagFinal}}})
			}
		}
	}
	cases = append(cases, tc{"1 MiB+1 with ad", chunked(pattern(1<<20+1, 9), []byte("base_000000010000000000000002/tar_partitions/part_001.tar.lz4"))})
	var tags []ssMsg
	for i, tag := range []byte{ssTagMessage, ssTagPush, ssTagRekey, ssTagMessage, ssTagRekey, ssTagRekey, ssTagPush | ssTagRekey, 0x80, ssTagMessage, ssTagFinal} {
		tags = append(tags, ssMsg{m: pattern(i*13, byte(i)), ad: pattern(i%3*5, 7), tag: tag})
	}
	cases = append(cases, tc{"PUSH and REKEY tags", tags})
	cases = append(cases, tc{"counter wrap", []ssMsg{
		{m: pattern(100, 1), tag: ssTagMessage},
		{m: pattern(8192, 2), tag: ssTagMessage, wrap: true},
		{m: pattern(8192, 3), tag: ssTagMessage},
		{m: pattern(5, 4), tag: ssTagFinal, wrap: true},
	}})
	return cases
}

// sealAll seals msgs under key and header with fresh output buffers.
func sealAll(key *[32]byte, header [24]byte, msgs []ssMsg) [][]byte {
	s := newSSPushHeader(key, header)
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		if m.wrap {
			setCounter(&s.st, 0xffffffff)
		}
		out[i] = s.seal(nil, m.m, m.ad, m.tag)
	}
	return out
}

// openAll opens cs and checks them against msgs.
func openAll(t *testing.T, key *[32]byte, header []byte, msgs []ssMsg, cs [][]byte) {
	t.Helper()
	s, err := newSSPull(key, header)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != len(msgs) {
		t.Fatalf("%d messages, want %d", len(cs), len(msgs))
	}
	for i, m := range msgs {
		if m.wrap {
			setCounter(&s.st, 0xffffffff)
		}
		if got, want := len(cs[i]), len(m.m)+ssABytes; got != want {
			t.Fatalf("message %d: %d bytes, want %d", i, got, want)
		}
		p, tag, err := s.open([]byte("prefix"), cs[i], m.ad)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if tag != m.tag {
			t.Errorf("message %d: tag %d, want %d", i, tag, m.tag)
		}
		if !bytes.Equal(p, append([]byte("prefix"), m.m...)) {
			t.Fatalf("message %d: plaintext differs", i)
		}
	}
}

func TestSecretstreamRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range ssCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key := testKey(1)
			header, s := newSSPush(key)
			cs := make([][]byte, len(tc.msgs))
			for i, m := range tc.msgs {
				if m.wrap {
					setCounter(&s.st, 0xffffffff)
				}
				cs[i] = s.seal([]byte("x"), m.m, m.ad, m.tag)[1:]
			}
			openAll(t, key, header[:], tc.msgs, cs)
		})
	}
}

// TestSecretstreamKnownAnswer checks a stream made by libsodium 1.0.18's
// crypto_secretstream_xchacha20poly1305 (with the header below put into its
// state in place of a random one), so that compatibility is tested even where
// the reference test cannot run: sizes on both paths, additional data, PUSH,
// REKEY and FINAL.
func TestSecretstreamKnownAnswer(t *testing.T) {
	t.Parallel()
	key := testKey(1)
	header := [24]byte(mustHex(t, ssKATHeader))
	msgs := ssKATMessages()
	cs := sealAll(key, header, msgs)
	for i, want := range ssKATCiphertexts {
		if got := hex.EncodeToString(cs[i]); got != want {
			t.Errorf("message %d sealed to\n%s, libsodium's is\n%s", i, got, want)
		}
	}
	var lib [][]byte
	for _, c := range ssKATCiphertexts {
		lib = append(lib, mustHex(t, c))
	}
	openAll(t, key, header[:], msgs, lib)
}

const ssKATHeader = "000102030405060708090a0b0c0d0e0f1011121314151617"

func ssKATMessages() []ssMsg {
	return []ssMsg{
		{m: nil, tag: ssTagMessage},
		{m: []byte("hello"), ad: []byte("ad"), tag: ssTagMessage},
		{m: pattern(16, 3), tag: ssTagPush},
		{m: pattern(24, 4), ad: pattern(16, 5), tag: ssTagRekey},
		{m: pattern(33, 6), tag: ssTagMessage},
		{m: pattern(64, 7), ad: pattern(17, 8), tag: ssTagMessage},
		{m: []byte("the end"), tag: ssTagFinal},
	}
}

// ssKATCiphertexts are libsodium's output for ssKATMessages under testKey(1)
// and ssKATHeader, made with the reference script below.
var ssKATCiphertexts = []string{
	"8348dacc7c40139f945b83b7ac9e5b8f70",
	"11e2a88b46ab178398c6e57a266d63c1eba9712bca4e",
	"556112b9f0e5db534227d7669fd7e5b26ac5e9080da8e56188dfabd48a3a9f57c7",
	"1257e0637a3dd507a1ef7ebc58ad61d8b3129ca9daa4cc55da0e11b48363e80de36b4f61e18a625f93",
	"11ea39e17e2cc70d7d4c24b7644fc7df90f49f98c048cb498b5eedb7fa429f194028d9217533026e56a3bbd339910ee02436",
	"284588e627f69fed5eebcc7dee042f68b79919f743820dea14e227c0014be9571cdea789d4f087aaf8cdd69b587772e1666324afb5e470f12ffa6de02f18c95488d22d14ac9188f266914c0279cf81b845",
	"e3040a0728108167b0f09c0cf478c9676df18d34d7292ae4",
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSecretstreamFastPathMatchesSlow seals and opens every length up to 200
// that the fast path takes (the multiples of 8), with additional data of 0 to
// 33 bytes, through the AEAD and through the generic path, and requires the
// same bytes and states.
func TestSecretstreamFastPathMatchesSlow(t *testing.T) {
	t.Parallel()
	key := testKey(3)
	var header [24]byte
	fast, slow := newSSPushHeader(key, header), newSSPushHeader(key, header)
	fastPull, _ := newSSPull(key, header[:])
	slowPull, _ := newSSPull(key, header[:])
	for mlen := 0; mlen <= 200; mlen += 8 {
		for adlen := 0; adlen <= 33; adlen++ {
			m, ad := pattern(mlen, byte(adlen)), pattern(adlen, byte(mlen))
			tag := byte(ssTagMessage)
			if adlen == 33 {
				tag = ssTagRekey
			}
			slow.st.aead = nil
			a, b := fast.seal(nil, m, ad, tag), slow.seal(nil, m, ad, tag)
			if !bytes.Equal(a, b) {
				t.Fatalf("len %d ad %d: fast path sealed %x, slow path %x", mlen, adlen, a, b)
			}
			if fast.st.k != slow.st.k || fast.st.nonce != slow.st.nonce {
				t.Fatalf("len %d ad %d: states differ after seal", mlen, adlen)
			}
			slowPull.st.aead = nil
			for _, p := range []*ssPull{fastPull, slowPull} {
				got, gotTag, err := p.open(nil, a, ad)
				if err != nil || gotTag != tag || !bytes.Equal(got, m) {
					t.Fatalf("len %d ad %d (slow path %v): open gave tag %d, %v", mlen, adlen, p.st.aead == nil, gotTag, err)
				}
			}
		}
	}
}

// A small stream for the tamper tests: header, then three messages.
func tamperStream() (key *[32]byte, header [24]byte, msgs []ssMsg, cs [][]byte) {
	key = testKey(5)
	msgs = []ssMsg{
		{m: pattern(16, 1), ad: []byte("a"), tag: ssTagMessage},
		{m: pattern(5, 2), ad: []byte("b"), tag: ssTagPush},
		{m: pattern(0, 3), ad: []byte("c"), tag: ssTagFinal},
	}
	header, s := newSSPush(key)
	for _, m := range msgs {
		cs = append(cs, s.seal(nil, m.m, m.ad, m.tag))
	}
	return key, header, msgs, cs
}

// TestSecretstreamTamper flips every byte of a small stream (header, tags,
// ciphertexts, MACs; three ways each), one at a time, and requires the stream
// to fail at the message holding the flip (at the first message for a
// flipped header) without moving the state: the genuine message and the rest
// of the stream must still open after the refusal.
func TestSecretstreamTamper(t *testing.T) {
	t.Parallel()
	key, header, msgs, cs := tamperStream()
	type target struct {
		name string
		b    []byte
		msg  int // the message that must fail
	}
	targets := []target{{"header", header[:], 0}}
	for i, c := range cs {
		targets = append(targets, target{fmt.Sprintf("message %d", i), c, i})
	}
	for _, tg := range targets {
		for pos := range tg.b {
			for _, flip := range []byte{0x01, 0x80, 0xff} {
				tg.b[pos] ^= flip
				s, err := newSSPull(key, header[:])
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < tg.msg; i++ {
					if _, _, err := s.open(nil, cs[i], msgs[i].ad); err != nil {
						t.Fatalf("%s byte %d ^%#x: message %d before it failed: %v", tg.name, pos, flip, i, err)
					}
				}
				before := s.st
				out, tag, err := s.open([]byte("keep"), cs[tg.msg], msgs[tg.msg].ad)
				if !errors.Is(err, errSSAuth) || tag != 0xff || string(out) != "keep" {
					t.Fatalf("%s byte %d ^%#x: open gave %q, tag %d, %v; want it refused", tg.name, pos, flip, out, tag, err)
				}
				if s.st.k != before.k || s.st.nonce != before.nonce {
					t.Fatalf("%s byte %d ^%#x: a refused message changed the state", tg.name, pos, flip)
				}
				tg.b[pos] ^= flip
				if tg.name == "header" {
					continue
				}
				// The state did not move: the genuine message opens, and so
				// does the rest of the stream.
				for i := tg.msg; i < len(cs); i++ {
					if _, _, err := s.open(nil, cs[i], msgs[i].ad); err != nil {
						t.Fatalf("%s byte %d ^%#x: genuine message %d after the refusal: %v", tg.name, pos, flip, i, err)
					}
				}
			}
		}
	}
}

func TestSecretstreamRefuses(t *testing.T) {
	t.Parallel()
	key, header, msgs, cs := tamperStream()
	type in struct{ c, ad []byte }
	msg := func(i int) in { return in{cs[i], msgs[i].ad} }
	tests := []struct {
		name string
		key  *[32]byte
		in   []in // opened in order; all but the last must open, the last must not
	}{
		{"wrong key", testKey(6), []in{msg(0)}},
		{"wrong ad", key, []in{{cs[0], []byte("b")}}},
		{"missing ad", key, []in{{cs[0], nil}}},
		{"second message first", key, []in{msg(1)}},
		{"a message skipped", key, []in{msg(0), msg(2)}},
		{"a message replayed", key, []in{msg(0), msg(0)}},
		{"truncated message", key, []in{{cs[0][:len(cs[0])-1], msgs[0].ad}}},
		{"extended message", key, []in{{append(slices.Clone(cs[0]), 0), msgs[0].ad}}},
		{"shorter than a tag and MAC", key, []in{{cs[2][:16], msgs[2].ad}}},
		{"empty", key, []in{{nil, msgs[0].ad}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := newSSPull(tt.key, header[:])
			if err != nil {
				t.Fatal(err)
			}
			last := len(tt.in) - 1
			for i, m := range tt.in {
				_, tag, err := s.open(nil, m.c, m.ad)
				if i < last && err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if i == last && (!errors.Is(err, errSSAuth) || tag != 0xff) {
					t.Fatalf("last message: tag %d, %v; want errSSAuth", tag, err)
				}
			}
		})
	}
	for _, n := range []int{0, 23, 25} {
		if _, err := newSSPull(key, make([]byte, n)); err == nil {
			t.Errorf("newSSPull with a header of %d bytes: no error", n)
		}
	}
}

// TestSecretstreamRekey checks that a REKEY tag, and a counter wrapped to 0,
// replace the key and inner nonce and restart the counter, while other tags
// only move the inner nonce and counter.
func TestSecretstreamRekey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		tag     byte
		counter uint32
		rekey   bool
	}{
		{"MESSAGE", ssTagMessage, 1, false},
		{"PUSH", ssTagPush, 1, false},
		{"FINAL", ssTagFinal, 1, true}, // FINAL is PUSH|REKEY
		{"REKEY", ssTagRekey, 1, true},
		{"REKEY at counter 7", ssTagRekey, 7, true},
		{"MESSAGE wrapping the counter", ssTagMessage, 0xffffffff, true},
		{"MESSAGE at counter 0xfffffffe", ssTagMessage, 0xfffffffe, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var header [24]byte
			s := newSSPushHeader(testKey(2), header)
			setCounter(&s.st, tt.counter)
			before := s.st
			s.seal(nil, []byte("m"), nil, tt.tag)
			after := s.st
			counter := binary.LittleEndian.Uint32(after.nonce[:4])
			if tt.rekey {
				if after.k == before.k || counter != 1 {
					t.Errorf("no rekey: key changed %v, counter %d", after.k != before.k, counter)
				}
			} else if after.k != before.k || counter != tt.counter+1 || [8]byte(after.nonce[4:]) == [8]byte(before.nonce[4:]) {
				t.Errorf("state: key changed %v, counter %d (want %d), inner nonce changed %v",
					after.k != before.k, counter, tt.counter+1, [8]byte(after.nonce[4:]) != [8]byte(before.nonce[4:]))
			}
		})
	}
}

// TestSecretstreamNoAllocs requires seal and open to allocate nothing per
// message once their buffers have grown, on both paths.
func TestSecretstreamNoAllocs(t *testing.T) {
	for _, n := range []int{8192, 100} {
		key := testKey(4)
		header, push := newSSPush(key)
		pull, _ := newSSPull(key, header[:])
		m := pattern(n, 1)
		c := make([]byte, 0, n+ssABytes)
		p := make([]byte, 0, n)
		allocs := testing.AllocsPerRun(50, func() {
			c = push.seal(c[:0], m, nil, ssTagMessage)
			var err error
			if p, _, err = pull.open(p[:0], c, nil); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%d-byte messages: %.1f allocations per seal and open", n, allocs)
		}
	}
}

func BenchmarkSeal8192(b *testing.B) {
	key := testKey(1)
	_, s := newSSPush(key)
	m := pattern(8192, 1)
	out := make([]byte, 0, 8192+ssABytes)
	b.SetBytes(8192)
	for b.Loop() {
		out = s.seal(out[:0], m, nil, ssTagMessage)
	}
}

func BenchmarkOpen8192(b *testing.B) {
	key := testKey(1)
	header, s := newSSPush(key)
	// Open needs a fresh stream's messages in order: seal as many as the
	// loop may open, in batches, and restart the receiver per batch.
	const batch = 1024
	cs := make([][]byte, batch)
	for i := range cs {
		cs[i] = s.seal(nil, pattern(8192, byte(i)), nil, ssTagMessage)
	}
	out := make([]byte, 0, 8192)
	b.SetBytes(8192)
	var p *ssPull
	i := 0
	for b.Loop() {
		if i%batch == 0 {
			p, _ = newSSPull(key, header[:])
		}
		var err error
		if out, _, err = p.open(out[:0], cs[i%batch], nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// ssReferenceScript drives libsodium's crypto_secretstream_xchacha20poly1305
// through ctypes. It reads on stdin a JSON list of jobs, each a stream:
//
//	{"op": "push", "key": hex, "header": hex or absent (then a random one),
//	 "messages": [{"m": hex, "ad": hex, "tag": n, "wrap": bool}]}
//	{"op": "pull", "key": hex, "header": hex,
//	 "messages": [{"c": hex, "ad": hex, "wrap": bool}]}
//
// and writes {"version": v, "results": [...]} with, per job, for push
// {"header": hex, "out": [ciphertext hex]}, for pull {"out": [{"m": hex,
// "tag": n}], "failed": index of the refused message or -1}. "wrap" sets the
// state's counter to 0xffffffff before the message. A push with a header
// starts as init_push would have with that header (by init_pull, which sets
// the same state), since init_push draws its own.
const ssReferenceScript = `
import ctypes, json, sys

lib = ctypes.CDLL("libsodium.so.23")
if lib.sodium_init() < 0:
    sys.exit("sodium_init failed")
lib.sodium_version_string.restype = ctypes.c_char_p
lib.crypto_secretstream_xchacha20poly1305_statebytes.restype = ctypes.c_size_t
ull = ctypes.c_ulonglong
lib.crypto_secretstream_xchacha20poly1305_init_push.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
lib.crypto_secretstream_xchacha20poly1305_init_pull.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
lib.crypto_secretstream_xchacha20poly1305_push.argtypes = [
    ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ull),
    ctypes.c_char_p, ull, ctypes.c_char_p, ull, ctypes.c_ubyte]
lib.crypto_secretstream_xchacha20poly1305_pull.argtypes = [
    ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ull), ctypes.POINTER(ctypes.c_ubyte),
    ctypes.c_char_p, ull, ctypes.c_char_p, ull]
statebytes = lib.crypto_secretstream_xchacha20poly1305_statebytes()

def ad_of(msg):
    ad = bytes.fromhex(msg.get("ad", ""))
    return (ad or None), len(ad)

def run(job):
    key = bytes.fromhex(job["key"])
    state = ctypes.create_string_buffer(statebytes)
    # The state is k[32], nonce[12] = counter (little-endian) || inner nonce, pad[8].
    def wrap():
        ctypes.memmove(ctypes.addressof(state) + 32, b"\xff\xff\xff\xff", 4)
    if job["op"] == "push":
        header = ctypes.create_string_buffer(24)
        lib.crypto_secretstream_xchacha20poly1305_init_push(state, header, key)
        if "header" in job:
            header = ctypes.create_string_buffer(bytes.fromhex(job["header"]), 24)
            lib.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
        out = []
        for msg in job["messages"]:
            if msg.get("wrap"):
                wrap()
            m = bytes.fromhex(msg.get("m", ""))
            ad, adlen = ad_of(msg)
            c = ctypes.create_string_buffer(len(m) + 17)
            clen = ull()
            if lib.crypto_secretstream_xchacha20poly1305_push(state, c, ctypes.byref(clen), m, len(m), ad, adlen, msg["tag"]) != 0:
                sys.exit("push failed")
            out.append(c.raw[:clen.value].hex())
        return {"header": header.raw.hex(), "out": out}
    if lib.crypto_secretstream_xchacha20poly1305_init_pull(state, bytes.fromhex(job["header"]), key) != 0:
        sys.exit("init_pull failed")
    out = []
    for i, msg in enumerate(job["messages"]):
        if msg.get("wrap"):
            wrap()
        c = bytes.fromhex(msg.get("c", ""))
        ad, adlen = ad_of(msg)
        m = ctypes.create_string_buffer(max(len(c) - 17, 1))
        mlen = ull()
        tag = ctypes.c_ubyte()
        if lib.crypto_secretstream_xchacha20poly1305_pull(state, m, ctypes.byref(mlen), ctypes.byref(tag), c, len(c), ad, adlen) != 0:
            return {"out": out, "failed": i}
        out.append({"m": m.raw[:mlen.value].hex(), "tag": tag.value})
    return {"out": out, "failed": -1}

jobs = json.load(sys.stdin)
json.dump({"version": lib.sodium_version_string().decode(), "results": [run(job) for job in jobs]}, sys.stdout)
`

type refMsg struct {
	M    string `json:"m,omitempty"`
	C    string `json:"c,omitempty"`
	AD   string `json:"ad,omitempty"`
	Tag  byte   `json:"tag"`
	Wrap bool   `json:"wrap,omitempty"`
}

type refJob struct {
	Op       string   `json:"op"`
	Key      string   `json:"key"`
	Header   string   `json:"header,omitempty"`
	Messages []refMsg `json:"messages"`
}

type refResult struct {
	Header string          `json:"header"`
	Out    json.RawMessage `json:"out"`
	Failed int             `json:"failed"`
}

// ciphertexts decodes a push job's output.
func (r refResult) ciphertexts(t *testing.T) [][]byte {
	t.Helper()
	var hexes []string
	if err := json.Unmarshal(r.Out, &hexes); err != nil {
		t.Fatal(err)
	}
	var cs [][]byte
	for _, h := range hexes {
		cs = append(cs, mustHex(t, h))
	}
	return cs
}

// pushJob asks libsodium to seal msgs under key (and header, if not "").
func pushJob(key *[32]byte, header string, msgs []ssMsg) refJob {
	job := refJob{Op: "push", Key: hex.EncodeToString(key[:]), Header: header}
	for _, m := range msgs {
		job.Messages = append(job.Messages, refMsg{M: hex.EncodeToString(m.m), AD: hex.EncodeToString(m.ad), Tag: m.tag, Wrap: m.wrap})
	}
	return job
}

// runLibsodium runs the reference script at script with jobs.
func runLibsodium(script string, jobs []refJob) (version string, results []refResult, err error) {
	in, err := json.Marshal(jobs)
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command("python3", script)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", nil, fmt.Errorf("python3 %s: %v: %s", script, err, strings.TrimSpace(stderr.String()))
	}
	var resp struct {
		Version string      `json:"version"`
		Results []refResult `json:"results"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		return "", nil, fmt.Errorf("python3 %s: %v", script, err)
	}
	if len(resp.Results) != len(jobs) {
		return "", nil, fmt.Errorf("python3 %s: %d results for %d jobs", script, len(resp.Results), len(jobs))
	}
	return resp.Version, resp.Results, nil
}

// libsodium runs jobs through libsodium.so.23, skipping the test (failing it
// under CI or TUSK_TEST_REQUIRE) when python3 or the library is missing.
func libsodium(t *testing.T, jobs []refJob) []refResult {
	t.Helper()
	script := filepath.Join(t.TempDir(), "secretstream.py")
	if err := os.WriteFile(script, []byte(ssReferenceScript), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := exec.LookPath("python3")
	testenv.Require(t, "python3", err == nil, fmt.Sprint(err))
	out, err := exec.Command("python3", "-c", `import ctypes; ctypes.CDLL("libsodium.so.23")`).CombinedOutput()
	testenv.Require(t, "libsodium.so.23", err == nil, fmt.Sprintf("python3 cannot load it: %v: %s", err, bytes.TrimSpace(out)))
	version, results, err := runLibsodium(script, jobs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("libsodium %s", version)
	return results
}

// TestIntegrationSecretstreamLibsodium runs every stream of ssCases both
// ways against the real libsodium: Go seals and libsodium pulls, libsodium
// pushes and Go opens.
func TestIntegrationSecretstreamLibsodium(t *testing.T) {
	t.Parallel()
	key := testKey(11)
	cases := ssCases()
	// One run of the script for all the cases: jobs 2i (libsodium pulls
	// what Go sealed) and 2i+1 (libsodium pushes) belong to case i.
	var jobs []refJob
	for _, tc := range cases {
		header, s := newSSPush(key)
		pull := refJob{Op: "pull", Key: hex.EncodeToString(key[:]), Header: hex.EncodeToString(header[:])}
		for _, m := range tc.msgs {
			if m.wrap {
				setCounter(&s.st, 0xffffffff)
			}
			c := s.seal(nil, m.m, m.ad, m.tag)
			pull.Messages = append(pull.Messages, refMsg{C: hex.EncodeToString(c), AD: hex.EncodeToString(m.ad), Wrap: m.wrap})
		}
		jobs = append(jobs, pull, pushJob(key, "", tc.msgs))
	}
	results := libsodium(t, jobs)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pulled, pushed := results[2*i], results[2*i+1]
			if pulled.Failed != -1 {
				t.Fatalf("libsodium refused message %d of what Go sealed", pulled.Failed)
			}
			var got []refMsg
			if err := json.Unmarshal(pulled.Out, &got); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.msgs) {
				t.Fatalf("libsodium opened %d messages, want %d", len(got), len(tc.msgs))
			}
			for j, m := range got {
				if m.M != hex.EncodeToString(tc.msgs[j].m) || m.Tag != tc.msgs[j].tag {
					t.Fatalf("message %d: libsodium opened tag %d and a different plaintext (want tag %d)", j, m.Tag, tc.msgs[j].tag)
				}
			}
			openAll(t, key, mustHex(t, pushed.Header), tc.msgs, pushed.ciphertexts(t))
		})
	}
}

// TestIntegrationSecretstreamKnownAnswer has libsodium seal the known-answer
// stream with its fixed header, and requires exactly ssKATCiphertexts.
func TestIntegrationSecretstreamKnownAnswer(t *testing.T) {
	t.Parallel()
	res := libsodium(t, []refJob{pushJob(testKey(1), ssKATHeader, ssKATMessages())})[0]
	var got []string
	for _, c := range res.ciphertexts(t) {
		got = append(got, hex.EncodeToString(c))
	}
	if !slices.Equal(got, ssKATCiphertexts) {
		t.Errorf("libsodium's stream differs from ssKATCiphertexts; it is:\n\t%q", got)
	}
}
