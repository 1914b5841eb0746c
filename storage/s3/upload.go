package s3

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/storage"
)

// Why our own uploader: the SDK's feature/s3/manager is deprecated and its
// successor feature/s3/transfermanager is pre-1.0 (v0.x, its API may still
// change). What we need is small: stream a reader of unknown length with
// bounded memory, all or nothing.
//
//   - The reader is read into 1 MiB chunks from the store's free list, a
//     part's worth at most. A reader that ends within the first part (WAL
//     segments, backup parts, most objects) becomes one PutObject with a
//     known Content-Length: S3 shows the object whole or not at all. Memory
//     follows what the object holds, not the part size: a 7 MiB backup part
//     holds seven chunks, where a contiguous part buffer was 8 or 16 MiB
//     (and 16 or 32 once the object passed one part, since telling whether
//     it ends at the boundary took a second one; a chunk does now).
//   - A longer reader becomes a multipart upload: parts are read in turn and
//     sent by an errgroup with SetLimit(UploadConcurrency), so at most
//     UploadConcurrency+1 parts' chunks exist per Put (one being filled).
//   - Every part (and a single PutObject) carries a CRC32C checksum, which S3
//     and MinIO verify before accepting it; S3 keeps it and GetObject checks
//     it again. The SDK retries a part from its chunks in memory.
//   - Any failure, of the reader, a request or ctx, aborts the multipart
//     upload (with a fresh, short context), so no object appears under the
//     key and no parts linger.
//
// The object becomes visible when the last request (PutObject or
// CompleteMultipartUpload) succeeds. If ctx is cancelled while that request
// is in flight, S3 may have stored the object although Put returns an error;
// as with any network store, a retried Put simply replaces it.

// abortTimeout bounds the AbortMultipartUpload that cleans up after a failed
// Put, which runs even when the Put's ctx is done.
const abortTimeout = 30 * time.Second

const checksumAlgorithm = types.ChecksumAlgorithmCrc32c

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksumCRC32C returns the x-amz-checksum-crc32c value of p's bytes. We
// compute it ourselves, from the chunks we hold anyway, so that the SDK sends
// it as a plain header on HTTP and HTTPS alike; left to itself, the SDK sends
// it over HTTPS as an aws-chunked trailer, which some S3-compatible servers
// reject.
func checksumCRC32C(p *part) *string {
	var crc uint32
	for _, c := range p.bytes() {
		crc = crc32.Update(crc, castagnoli, c)
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc)
	return aws.String(base64.StdEncoding.EncodeToString(sum[:]))
}

// Put implements storage.Storage.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	if err := storage.CheckKey(key); err != nil {
		return err
	}
	if err := s.put(ctx, s.objectKey(key), r); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// chunkSize is the size of the buffers a Put reads into.
const chunkSize = 1 << 20

// bufferList is a bounded free list of equal-sized buffers.
type bufferList struct {
	size int
	free chan *[]byte
}

func newBufferList(size, keep int) bufferList {
	return bufferList{size: size, free: make(chan *[]byte, keep)}
}

func (l bufferList) get() *[]byte {
	select {
	case b := <-l.free:
		return b
	default:
		b := make([]byte, l.size)
		return &b
	}
}

func (l bufferList) put(b *[]byte) {
	select {
	case l.free <- b:
	default: // enough kept; let the GC have it
	}
}

// part is an object's or a multipart part's bytes: full chunks, and the last
// one filled to n's remainder.
type part struct {
	chunks []*[]byte
	n      int64
}

// bytes returns p's bytes, chunk by chunk.
func (p *part) bytes() [][]byte {
	out := make([][]byte, 0, len(p.chunks))
	left := p.n
	for _, c := range p.chunks {
		k := min(int64(len(*c)), left)
		out = append(out, (*c)[:k])
		left -= k
	}
	return out
}

// reader returns a reader of p's bytes that the SDK can rewind to retry.
func (p *part) reader() *chunkReader {
	return &chunkReader{chunks: p.bytes(), size: p.n}
}

func (s *Store) release(p *part) {
	for _, c := range p.chunks {
		s.chunks.put(c)
	}
	p.chunks, p.n = nil, 0
}

// fill reads r into p until p holds limit bytes. It returns io.EOF, with p
// possibly holding some, when r ended, nil when p is full, or r's error or
// ctx's, checked between Reads.
func (s *Store) fill(ctx context.Context, r io.Reader, p *part, limit int64) error {
	empty := 0
	for p.n < limit {
		if err := ctx.Err(); err != nil {
			return err
		}
		at := int(p.n % chunkSize)
		if at == 0 && int64(len(p.chunks))*chunkSize == p.n {
			p.chunks = append(p.chunks, s.chunks.get())
		}
		c := *p.chunks[len(p.chunks)-1]
		m, err := r.Read(c[at:min(int64(len(c)), int64(at)+limit-p.n)])
		p.n += int64(m)
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if empty = empty + 1; m > 0 {
			empty = 0
		} else if empty == 100 { // as bufio does, rather than spin forever
			return fmt.Errorf("read: %w", io.ErrNoProgress)
		}
	}
	return nil
}

// chunkReader reads a part's chunks in order; Seek lets the SDK rewind it
// to send a request again.
type chunkReader struct {
	chunks [][]byte
	size   int64
	off    int64
}

func (c *chunkReader) Read(b []byte) (int, error) {
	if c.off >= c.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(b) && c.off < c.size {
		i, at := c.off/chunkSize, c.off%chunkSize
		k := copy(b[n:], c.chunks[i][at:])
		n += k
		c.off += int64(k)
	}
	return n, nil
}

func (c *chunkReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += c.off
	case io.SeekEnd:
		offset += c.size
	default:
		return 0, fmt.Errorf("chunk reader: bad whence %d", whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("chunk reader: negative position %d", offset)
	}
	c.off = offset
	return offset, nil
}

func (s *Store) put(ctx context.Context, objKey string, r io.Reader) error {
	first := &part{}
	switch err := s.fill(ctx, r, first, s.cfg.PartSize); {
	case err == io.EOF:
		defer s.release(first)
		return s.putObject(ctx, objKey, first)
	case err != nil:
		s.release(first)
		return err
	}
	// The first part is full; one more chunk's worth tells whether the
	// reader ended exactly at the part boundary.
	second := &part{}
	err := s.fill(ctx, r, second, chunkSize)
	switch {
	case err != io.EOF && err != nil:
		s.release(first)
		s.release(second)
		return err
	case second.n == 0:
		defer s.release(first)
		s.release(second)
		return s.putObject(ctx, objKey, first)
	}
	return s.multipart(ctx, objKey, r, first, second, err == io.EOF)
}

func (s *Store) putObject(ctx context.Context, objKey string, p *part) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:               aws.String(s.cfg.Bucket),
		Key:                  aws.String(objKey),
		Body:                 p.reader(),
		ContentLength:        aws.Int64(p.n),
		ChecksumAlgorithm:    checksumAlgorithm,
		ChecksumCRC32C:       checksumCRC32C(p),
		ServerSideEncryption: types.ServerSideEncryption(s.cfg.SSE),
		SSEKMSKeyId:          s.kmsKeyID(),
		StorageClass:         types.StorageClass(s.cfg.StorageClass),
	}, s.unsignedPayload)
	return s.classify(ctx, err)
}

func (s *Store) kmsKeyID() *string {
	if s.cfg.SSEKMSKeyID == "" {
		return nil
	}
	return aws.String(s.cfg.SSEKMSKeyID)
}

// multipart uploads first (a full part), then next (a part begun: filled up
// from r before it is sent, unless eof says r has already ended) and the rest
// of r, as one multipart upload. It owns both parts' chunks.
func (s *Store) multipart(ctx context.Context, objKey string, r io.Reader, first, next *part, eof bool) (err error) {
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:               aws.String(s.cfg.Bucket),
		Key:                  aws.String(objKey),
		ChecksumAlgorithm:    checksumAlgorithm,
		ServerSideEncryption: types.ServerSideEncryption(s.cfg.SSE),
		SSEKMSKeyId:          s.kmsKeyID(),
		StorageClass:         types.StorageClass(s.cfg.StorageClass),
	})
	if err != nil {
		s.release(first)
		s.release(next)
		return s.classify(ctx, err)
	}
	uploadID := created.UploadId
	defer func() {
		if err != nil {
			err = s.abort(ctx, objKey, uploadID, err)
		}
	}()

	// partsCtx stops the parts in flight when the reader fails.
	partsCtx, cancelParts := context.WithCancel(ctx)
	defer cancelParts()
	g, gctx := errgroup.WithContext(partsCtx)
	g.SetLimit(s.cfg.UploadConcurrency)

	// Only this goroutine appends to done; each part's goroutine fills in
	// its own element.
	var done []*types.CompletedPart
	send := func(p *part) {
		num := int32(len(done) + 1)
		cp := &types.CompletedPart{PartNumber: aws.Int32(num)}
		done = append(done, cp)
		g.Go(func() error {
			defer s.release(p)
			sum := checksumCRC32C(p)
			out, err := s.client.UploadPart(gctx, &s3.UploadPartInput{
				Bucket:            aws.String(s.cfg.Bucket),
				Key:               aws.String(objKey),
				UploadId:          uploadID,
				PartNumber:        aws.Int32(num),
				Body:              p.reader(),
				ContentLength:     aws.Int64(p.n),
				ChecksumAlgorithm: checksumAlgorithm,
				ChecksumCRC32C:    sum,
			}, s.unsignedPayload)
			if err != nil {
				return fmt.Errorf("upload part %d: %w", num, s.classify(gctx, err))
			}
			// CompleteMultipartUpload wants each part's checksum back.
			cp.ETag = out.ETag
			cp.ChecksumCRC32C = sum
			return nil
		})
	}
	send(first)

	var readErr error
	p := next
	for p != nil && gctx.Err() == nil {
		var err error
		if !eof {
			err = s.fill(ctx, r, p, s.cfg.PartSize)
		}
		if p.n > 0 && len(done) == s.maxParts {
			s.release(p)
			readErr = fmt.Errorf("object is larger than %d parts of %d MiB, S3's limit; raise the part size", s.maxParts, s.cfg.PartSize>>20)
			break
		}
		if p.n > 0 {
			send(p)
		} else {
			s.release(p)
		}
		p = &part{}
		if err == io.EOF {
			eof = true
		} else if err != nil {
			readErr = err
		}
		if eof || readErr != nil {
			break
		}
	}
	if readErr != nil {
		cancelParts()
	}
	partsErr := g.Wait()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case readErr != nil:
		return readErr
	case partsErr != nil:
		return partsErr
	}

	parts := make([]types.CompletedPart, len(done))
	for i, cp := range done {
		parts[i] = *cp
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.cfg.Bucket),
		Key:             aws.String(objKey),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return fmt.Errorf("complete multipart upload: %w", s.classify(ctx, err))
	}
	return nil
}

// abort cancels a multipart upload after cause, so that S3 drops its parts.
// It runs on a fresh context: the Put's own may be the reason for the abort.
func (s *Store) abort(ctx context.Context, objKey string, uploadID *string, cause error) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, err := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(s.cfg.Bucket),
		Key:      aws.String(objKey),
		UploadId: uploadID,
	})
	var noUpload *types.NoSuchUpload
	if err == nil || errors.As(err, &noUpload) {
		return cause
	}
	return fmt.Errorf("%w (and aborting multipart upload %s failed, so its parts stay until a bucket lifecycle rule removes them: %v)",
		cause, aws.ToString(uploadID), s.classify(actx, err))
}

// unsignedPayload signs a body-carrying request without hashing its body
// (UNSIGNED-PAYLOAD). The SDK otherwise hashes every body with SHA-256 when
// the endpoint is plain HTTP, a second pass over each part that on a small
// machine costs more than compressing it. The body's integrity is still
// checked end to end: the server verifies the CRC32C we send with it, and
// our own objects carry a SHA-256 of their content.
func (s *Store) unsignedPayload(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
}
